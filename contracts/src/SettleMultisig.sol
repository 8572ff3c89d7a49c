// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {LowLevelCall} from "@openzeppelin/contracts/utils/LowLevelCall.sol";

import {ISettleMultisig} from "./interfaces/ISettleMultisig.sol";

/// @title SettleMultisig
/// @notice M-of-N multisig approving operations with EIP-712 owner signatures. Intended as the
/// proposer, executor and canceller of the settle TimelockController.
/// @dev Not upgradeable. Owner set and threshold change only through {execute} targeting this contract.
contract SettleMultisig is ISettleMultisig, EIP712 {
    /// @notice EIP-712 typehash of the signed struct.
    bytes32 public constant OPERATION_TYPEHASH =
        keccak256("Operation(address target,uint256 value,bytes data,uint256 nonce)");

    address[] private _owners;
    /// @dev Position of each owner in `_owners`, plus one; zero means "not an owner".
    mapping(address account => uint256 position) private _ownerPosition;
    uint256 private _threshold;
    uint256 private _nonce;

    modifier onlySelf() {
        if (msg.sender != address(this)) revert OnlySelf();
        _;
    }

    /// @notice Deploys the multisig with its initial owners and threshold.
    /// @param owners The initial owners: non-zero, no duplicates.
    /// @param initialThreshold Signatures required, in 1..owners.length.
    constructor(address[] memory owners, uint256 initialThreshold) EIP712("SettleMultisig", "1") {
        for (uint256 i = 0; i < owners.length; ++i) {
            _addOwner(owners[i]);
        }
        _setThreshold(initialThreshold);
    }

    /// @notice Accepts ETH so the multisig can fund `value` calls.
    receive() external payable {
        emit Received(msg.sender, msg.value);
    }

    /// @inheritdoc ISettleMultisig
    function execute(address target, uint256 value, bytes calldata data, bytes[] calldata signatures)
        external
        payable
        returns (bytes memory result)
    {
        uint256 currentNonce = _nonce;
        bytes32 digest = _operationDigest(target, value, data, currentNonce);
        _checkSignatures(digest, signatures);

        // Consume the nonce before calling out: the signatures cannot be replayed, not even by the target
        // re-entering this function.
        _nonce = currentNonce + 1;
        emit Executed(currentNonce, target, value, digest);

        bool success;
        (success, result) = target.call{value: value}(data);
        if (!success) LowLevelCall.bubbleRevert(result);
    }

    /// @inheritdoc ISettleMultisig
    function operationDigest(address target, uint256 value, bytes calldata data, uint256 operationNonce)
        external
        view
        returns (bytes32)
    {
        return _operationDigest(target, value, data, operationNonce);
    }

    /// @inheritdoc ISettleMultisig
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @inheritdoc ISettleMultisig
    function addOwner(address owner) external onlySelf {
        _addOwner(owner);
    }

    /// @inheritdoc ISettleMultisig
    function removeOwner(address owner) external onlySelf {
        uint256 position = _ownerPosition[owner];
        if (position == 0) revert NotAnOwner(owner);
        uint256 remaining = _owners.length - 1;
        if (remaining < _threshold) revert InvalidThreshold(_threshold, remaining);

        // Swap-and-pop keeps removal O(1); getOwners promises no order.
        address moved = _owners[remaining];
        _owners[position - 1] = moved;
        _ownerPosition[moved] = position;
        _owners.pop();
        delete _ownerPosition[owner];
        emit OwnerRemoved(owner);
    }

    /// @inheritdoc ISettleMultisig
    function changeThreshold(uint256 newThreshold) external onlySelf {
        _setThreshold(newThreshold);
    }

    /// @inheritdoc ISettleMultisig
    function getOwners() external view returns (address[] memory) {
        return _owners;
    }

    /// @inheritdoc ISettleMultisig
    function isOwner(address account) external view returns (bool) {
        return _ownerPosition[account] != 0;
    }

    /// @inheritdoc ISettleMultisig
    function threshold() external view returns (uint256) {
        return _threshold;
    }

    /// @inheritdoc ISettleMultisig
    function nonce() external view returns (uint256) {
        return _nonce;
    }

    function _operationDigest(address target, uint256 value, bytes calldata data, uint256 operationNonce)
        private
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(abi.encode(OPERATION_TYPEHASH, target, value, keccak256(data), operationNonce))
        );
    }

    /// @dev Every signature must be a valid owner signature, and signers strictly ascending.
    function _checkSignatures(bytes32 digest, bytes[] calldata signatures) private view {
        uint256 count = signatures.length;
        if (count < _threshold) revert ThresholdNotMet(count, _threshold);

        address previous = address(0);
        for (uint256 i = 0; i < count; ++i) {
            (address signer, ECDSA.RecoverError err, bytes32 errArg) =
                ECDSA.tryRecoverCalldata(digest, signatures[i]);
            if (err == ECDSA.RecoverError.InvalidSignatureLength) {
                revert InvalidSignatureLength(i, uint256(errArg));
            }
            if (err == ECDSA.RecoverError.InvalidSignatureS) revert InvalidSignatureS(i, errArg);
            if (err != ECDSA.RecoverError.NoError) revert InvalidSignature(i);
            if (_ownerPosition[signer] == 0) revert SignerNotOwner(i, signer);
            if (signer <= previous) revert SignersNotAscending(i, signer, previous);
            previous = signer;
        }
    }

    function _addOwner(address owner) private {
        if (owner == address(0)) revert ZeroAddressOwner();
        if (_ownerPosition[owner] != 0) revert DuplicateOwner(owner);
        _owners.push(owner);
        _ownerPosition[owner] = _owners.length;
        emit OwnerAdded(owner);
    }

    function _setThreshold(uint256 newThreshold) private {
        if (newThreshold == 0 || newThreshold > _owners.length) {
            revert InvalidThreshold(newThreshold, _owners.length);
        }
        _threshold = newThreshold;
        emit ThresholdChanged(newThreshold);
    }
}
