// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title ISplitSettlement
/// @notice Types, errors, events and entry points of the split settlement contract.
interface ISplitSettlement {
    /// @notice A signed batch of payments in one token, drawn once from one funder.
    /// @dev `payees` must be strictly ascending (no zero address, no duplicates).
    ///      `payments` is the packed list of payments, each
    ///      `bytes32 paymentId | uint128 amount | uint8 legCount | legCount x (uint16 payee | uint32 share)`
    ///      (big-endian, 49 + 6 * legCount bytes), where `payee` indexes `payees` and shares are parts per
    ///      million summing to 1,000,000. Packing keeps calldata, hashing and the event small.
    ///      `funding` is `FUNDING_DEPOSIT` (the funder's deposited balance) or `FUNDING_PULL`
    ///      (one `transferFrom` of the funder, or `msg.value` for the native coin).
    struct Batch {
        bytes32 batchId;
        uint256 nonce;
        uint64 deadline;
        address token;
        address funder;
        uint8 funding;
        address[] payees;
        bytes payments;
    }

    /// @notice Per-token limits; `enabled` gates settlement and deposits (never withdrawals).
    struct TokenConfig {
        uint128 maxPayment;
        uint128 dailyCap;
        uint128 spentToday;
        uint64 day;
        bool enabled;
    }

    // ---------------------------------------------------------------- errors

    /// @notice The batch's deadline has passed.
    error BatchExpired(uint256 deadline, uint256 timestamp);
    /// @notice The signature does not recover to an address.
    error InvalidSignature();
    /// @notice The signature is not 65 bytes long.
    error InvalidSignatureLength(uint256 length);
    /// @notice The signature's s is in the upper half of the curve order (malleable).
    error InvalidSignatureS(bytes32 s);
    /// @notice The recovered signer is not in the authorised signer set.
    error UnauthorizedSigner(address signer);
    /// @notice The signer's nonce was already used or invalidated.
    error NonceAlreadyUsed(address signer, uint256 nonce);
    /// @notice The token is not enabled for settlement or deposits.
    error TokenNotEnabled(address token);
    /// @notice The packed payments end in the middle of the payment at `paymentIndex`.
    error MalformedPayments(uint256 paymentIndex);
    /// @notice The batch has no payments.
    error EmptyBatch();
    /// @notice A payment has no legs.
    error EmptySplit(uint256 paymentIndex);
    /// @notice A payment's amount is zero.
    error ZeroAmount(uint256 paymentIndex);
    /// @notice A payment exceeds the token's maximum single payment.
    error PaymentTooLarge(uint256 paymentIndex, uint256 amount, uint256 maxPayment);
    /// @notice A payment's shares do not sum to the scale (1,000,000).
    error SharesMismatch(uint256 paymentIndex, uint256 shareSum);
    /// @notice A leg has a zero share.
    error ZeroShare(uint256 paymentIndex, uint256 legIndex);
    /// @notice A leg refers to a payee index outside `Batch.payees`.
    error UnknownPayee(uint256 paymentIndex, uint256 legIndex);
    /// @notice A payee is the zero address.
    error ZeroPayee(uint256 payeeIndex);
    /// @notice `Batch.payees` is not strictly ascending (unsorted or duplicated).
    error PayeesNotSorted(uint256 payeeIndex);
    /// @notice Settling would exceed the token's daily cap.
    error DailyCapExceeded(address token, uint256 requested, uint256 remaining);
    /// @notice An account's internal balance is too low.
    error InsufficientBalance(address token, address account, uint256 needed, uint256 available);
    /// @notice The token delivered less than was transferred (fee-on-transfer tokens are not supported).
    error FeeOnTransferToken(address token, uint256 expected, uint256 received);
    /// @notice `msg.value` does not match what the call needs.
    error WrongValue(uint256 expected, uint256 sent);
    /// @notice The batch's funding mode is unknown.
    error InvalidFunding(uint8 funding);
    /// @notice The caller is neither the guardian nor the owner.
    error NotGuardian(address caller);
    /// @notice A zero address where an account is required.
    error ZeroAddress();
    /// @notice An amount of zero where a positive amount is required.
    error ZeroValue();
    /// @notice Sending the native coin failed.
    error NativeTransferFailed(address to, uint256 amount);

    // ---------------------------------------------------------------- events

    /// @notice A batch settled: `total` was drawn from `funder` and credited to the payees.
    /// @param payments The signed packed payments, exactly as in `Batch.payments`.
    /// @param credits For every entry of `Batch.payees`, in order, `abi.encodePacked(address payee, uint128 amount)`
    ///        (36 bytes each): what the batch credited it. A leg's payee index refers to the same position here.
    event BatchSettled(
        bytes32 indexed batchId,
        address indexed signer,
        address indexed token,
        bytes32 digest,
        address funder,
        uint8 funding,
        uint256 nonce,
        uint256 total,
        bytes payments,
        bytes credits
    );
    /// @notice A credit was pushed out to a payee who opted in (it leaves the internal balance).
    event PushedOut(address indexed token, address indexed account, uint256 amount);
    /// @notice A push failed; the amount stays credited to the payee's internal balance.
    event PushFailed(address indexed token, address indexed account, uint256 amount);
    /// @notice Funds were deposited into a funder's balance.
    event Deposited(address indexed token, address indexed funder, address indexed from, uint256 amount);
    /// @notice An account withdrew from its balance.
    event Withdrawn(address indexed token, address indexed account, address to, uint256 amount);
    /// @notice An account chose push or pull for a token.
    event PushPreferenceSet(address indexed token, address indexed account, bool push);
    /// @notice A signer was authorised or removed.
    event SignerSet(address indexed signer, bool authorised);
    /// @notice A token's limits changed.
    event TokenConfigured(address indexed token, bool enabled, uint128 maxPayment, uint128 dailyCap);
    /// @notice The guardian changed.
    event GuardianSet(address indexed guardian);
    /// @notice A signer invalidated one of its nonces.
    event NonceInvalidated(address indexed signer, uint256 nonce);

    // ---------------------------------------------------------------- entry points

    /// @notice Settles a batch signed by an authorised signer.
    /// @param batch The batch; see `Batch`.
    /// @param signature 65-byte (r, s, v) signature over the batch's EIP-712 digest.
    /// @return digest The EIP-712 digest that was signed.
    function settleBatch(Batch calldata batch, bytes calldata signature)
        external
        payable
        returns (bytes32 digest);

    /// @notice Deposits `amount` of an ERC-20 token into `funder`'s balance; credits what arrived.
    function deposit(address token, address funder, uint256 amount) external;

    /// @notice Deposits `msg.value` of the native coin into `funder`'s balance.
    function depositNative(address funder) external payable;

    /// @notice Withdraws `amount` of `token` from the caller's balance to `to`.
    function withdraw(address token, uint256 amount, address to) external;

    /// @notice Chooses whether the caller's credits in `token` are pushed at settlement.
    function setPushPreference(address token, bool push) external;

    /// @notice Marks one of the caller's (a signer's) nonces used, cancelling a batch signed with it.
    function invalidateNonce(uint256 nonce) external;
}
