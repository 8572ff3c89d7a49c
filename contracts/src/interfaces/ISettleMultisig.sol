// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title ISettleMultisig
/// @notice An M-of-N multisig whose owners approve each call with an EIP-712 signature.
/// @dev Signed struct: `Operation(address target,uint256 value,bytes data,uint256 nonce)`, domain
/// name "SettleMultisig", version "1", with chainId and verifyingContract.
interface ISettleMultisig {
    /// @notice An owner address was the zero address.
    error ZeroAddressOwner();

    /// @notice `owner` is already an owner (or listed twice at construction).
    error DuplicateOwner(address owner);

    /// @notice `account` is not an owner, so it cannot be removed.
    error NotAnOwner(address account);

    /// @notice `threshold` is outside 1..`ownerCount`.
    error InvalidThreshold(uint256 threshold, uint256 ownerCount);

    /// @notice Owner management was called by someone other than the multisig itself.
    error OnlySelf();

    /// @notice Fewer signatures than the threshold were supplied.
    error ThresholdNotMet(uint256 got, uint256 needed);

    /// @notice Signature `index` is not 65 bytes long.
    error InvalidSignatureLength(uint256 index, uint256 length);

    /// @notice Signature `index` has an `s` in the upper half of the curve order (malleable form).
    error InvalidSignatureS(uint256 index, bytes32 s);

    /// @notice Signature `index` recovers to no address (bad `v`, or `r`/`s` not on the curve).
    error InvalidSignature(uint256 index);

    /// @notice Signature `index` recovers to `signer`, which is not an owner.
    error SignerNotOwner(uint256 index, address signer);

    /// @notice Signature `index` recovers to `signer`, which is not above the previous signer `previous`.
    /// @dev Strictly ascending order is what rules out counting one owner twice.
    error SignersNotAscending(uint256 index, address signer, address previous);

    /// @notice An approved operation was executed.
    /// @param nonce The nonce the operation was signed with (the nonce before the increment).
    /// @param target The address called.
    /// @param value The wei sent with the call.
    /// @param digest The EIP-712 digest the owners signed.
    event Executed(uint256 indexed nonce, address indexed target, uint256 value, bytes32 digest);

    /// @notice `owner` was added to the owner set.
    event OwnerAdded(address indexed owner);

    /// @notice `owner` was removed from the owner set.
    event OwnerRemoved(address indexed owner);

    /// @notice The number of required signatures changed to `threshold`.
    event ThresholdChanged(uint256 threshold);

    /// @notice `sender` sent `amount` wei to the multisig.
    event Received(address indexed sender, uint256 amount);

    /// @notice Calls `target` with `value` and `data` once at least `threshold` owners have signed it.
    /// @dev Anyone may submit. Signatures are 65-byte (r, s, v), sorted by signer address ascending, over
    /// {operationDigest} at the current {nonce}. The nonce increments before the call; a failing call
    /// reverts with the target's revert data unchanged.
    /// @param target The address to call (may be the multisig itself for owner management).
    /// @param value The wei to send, taken from the multisig's balance.
    /// @param data The calldata.
    /// @param signatures The owners' signatures.
    /// @return result The data the call returned.
    function execute(address target, uint256 value, bytes calldata data, bytes[] calldata signatures)
        external
        payable
        returns (bytes memory result);

    /// @notice The EIP-712 digest owners sign to approve an operation.
    /// @param target The address to call.
    /// @param value The wei to send.
    /// @param data The calldata.
    /// @param operationNonce The multisig nonce the operation is bound to.
    /// @return The digest for this contract on the current chain.
    function operationDigest(address target, uint256 value, bytes calldata data, uint256 operationNonce)
        external
        view
        returns (bytes32);

    /// @notice The EIP-712 domain separator for this contract on the current chain.
    /// @return The domain separator.
    function domainSeparator() external view returns (bytes32);

    /// @notice Adds `owner`. Only callable by the multisig itself, through {execute}.
    /// @param owner The new owner; non-zero and not already an owner.
    function addOwner(address owner) external;

    /// @notice Removes `owner`. Only callable by the multisig itself, through {execute}.
    /// @dev Reverts if the remaining owners would be fewer than the threshold.
    /// @param owner The owner to remove.
    function removeOwner(address owner) external;

    /// @notice Sets the number of required signatures. Only callable by the multisig itself, through {execute}.
    /// @param newThreshold The new threshold, in 1..owner count.
    function changeThreshold(uint256 newThreshold) external;

    /// @notice The current owners, in no particular order.
    /// @return The owner addresses.
    function getOwners() external view returns (address[] memory);

    /// @notice Whether `account` is an owner.
    /// @param account The address to check.
    /// @return True if `account` is an owner.
    function isOwner(address account) external view returns (bool);

    /// @notice The number of owner signatures {execute} requires.
    /// @return The threshold.
    function threshold() external view returns (uint256);

    /// @notice The nonce the next operation must be signed with.
    /// @return The nonce.
    function nonce() external view returns (uint256);
}
