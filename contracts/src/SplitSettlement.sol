// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Initializable} from "@openzeppelin/contracts-upgradeable/proxy/utils/Initializable.sol";
import {UUPSUpgradeable} from "@openzeppelin/contracts-upgradeable/proxy/utils/UUPSUpgradeable.sol";
import {OwnableUpgradeable} from "@openzeppelin/contracts-upgradeable/access/OwnableUpgradeable.sol";
import {PausableUpgradeable} from "@openzeppelin/contracts-upgradeable/utils/PausableUpgradeable.sol";

import {ISplitSettlement} from "./interfaces/ISplitSettlement.sol";
import {SplitMath} from "./lib/SplitMath.sol";

/// @title SplitSettlement
/// @notice Settles batches of split payments signed off-chain by an authorised signer.
/// @dev UUPS implementation behind an ERC1967 proxy, owned by a timelock whose proposer is a multisig.
///      Balances follow a pull model: credits land in an internal balance per (token, account), which the
///      account withdraws, unless it opted in to push, in which case the credit is sent at settlement and
///      stays credited if sending fails. The native coin is `address(0)`.
///      Conservation: for every token, what the contract holds equals the sum of internal balances.
contract SplitSettlement is
    ISplitSettlement,
    Initializable,
    UUPSUpgradeable,
    OwnableUpgradeable,
    PausableUpgradeable,
    ReentrancyGuardTransient,
    EIP712
{
    using SafeERC20 for IERC20;

    /// @notice Batch funding mode: draw from the funder's deposited balance.
    uint8 public constant FUNDING_DEPOSIT = 0;
    /// @notice Batch funding mode: one `transferFrom` of the funder (or `msg.value` for the native coin).
    uint8 public constant FUNDING_PULL = 1;

    /// @notice EIP-712 type of a batch. `payments` is hashed as `bytes` (keccak256 of the packed payments).
    bytes32 public constant BATCH_TYPEHASH = keccak256(
        "Batch(bytes32 batchId,uint256 nonce,uint64 deadline,address token,address funder,uint8 funding,"
        "address[] payees,bytes payments)"
    );

    /// @dev Bytes of a packed payment before its legs: paymentId (32), amount (16), legCount (1).
    uint256 private constant PAYMENT_HEADER = 49;
    /// @dev The `balance` bits of an `Account` slot.
    uint256 private constant BALANCE_MASK =
        0x00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff;
    /// @dev Bytes of a packed leg: payee index (2), share (4).
    uint256 private constant LEG_SIZE = 6;

    /// @notice An account's internal balance in one token and whether it wants credits pushed.
    struct Account {
        uint248 balance;
        bool push;
    }

    /// @custom:storage-location erc7201:settle.storage.SplitSettlement
    struct Layout {
        mapping(address signer => bool) signers;
        mapping(address signer => mapping(uint256 word => uint256 bits)) nonceBitmap;
        mapping(address token => TokenConfig) tokens;
        mapping(address token => mapping(address account => Account)) accounts;
        address guardian;
    }

    // keccak256(abi.encode(uint256(keccak256("settle.storage.SplitSettlement")) - 1)) & ~bytes32(uint256(0xff))
    bytes32 private constant LAYOUT_SLOT = 0x496933db89a9d8aaf732f681a822ea713ab2929e651508803fa0a0454e6ef000;

    /// @dev What one pass over a batch's payments yields.
    struct Tally {
        uint256 total;
        uint256[] credits;
        bytes payments;
        bytes32 structHash;
    }

    /// @custom:oz-upgrades-unsafe-allow constructor
    constructor() EIP712("SplitSettlement", "1") {
        _disableInitializers();
    }

    /// @notice Initialises the proxy's state.
    /// @param owner_ The owner (the timelock in production).
    /// @param guardian_ The account that may pause at once.
    function initialize(address owner_, address guardian_) external initializer {
        __Ownable_init(owner_);
        __Pausable_init();
        _layout().guardian = guardian_;
        emit GuardianSet(guardian_);
    }

    // ------------------------------------------------------------------ settlement

    /// @inheritdoc ISplitSettlement
    function settleBatch(Batch calldata batch, bytes calldata signature)
        external
        payable
        nonReentrant
        whenNotPaused
        returns (bytes32 digest)
    {
        // forge-lint: disable-next-line(block-timestamp)
        if (block.timestamp > batch.deadline) revert BatchExpired(batch.deadline, block.timestamp);
        Layout storage $ = _layout();
        TokenConfig storage cfg = $.tokens[batch.token];
        if (!cfg.enabled) revert TokenNotEnabled(batch.token);

        Tally memory tally = _tally(batch, cfg.maxPayment);
        digest = _hashTypedDataV4(tally.structHash);
        address signer = _recoverSigner(digest, signature);
        if (!$.signers[signer]) revert UnauthorizedSigner(signer);
        _useNonce($, signer, batch.nonce);
        _consumeDailyCap(cfg, batch.token, tally.total);
        _draw($, batch, tally.total);

        bytes memory credits = _credit($, batch, tally.credits);
        emit BatchSettled(
            batch.batchId,
            signer,
            batch.token,
            digest,
            batch.funder,
            batch.funding,
            batch.nonce,
            tally.total,
            tally.payments,
            credits
        );
    }

    /// @notice The EIP-712 digest a signer signs for `batch` on this chain and contract.
    /// @dev Validates the batch like `settleBatch` does (limits aside) and reverts the same way.
    function batchDigest(Batch calldata batch) external view returns (bytes32) {
        return _hashTypedDataV4(_tally(batch, type(uint128).max).structHash);
    }

    /// @notice The credits per payee index that `batch` would make, aggregated across its payments.
    function previewCredits(Batch calldata batch)
        external
        pure
        returns (uint256[] memory credits, uint256 total)
    {
        Tally memory tally = _tally(batch, type(uint128).max);
        return (tally.credits, tally.total);
    }

    /// @dev One pass: validates payees and the packed payments, splits every payment, aggregates credits per
    ///      payee and computes the batch's EIP-712 struct hash.
    function _tally(Batch calldata batch, uint256 maxPayment) private pure returns (Tally memory tally) {
        address[] calldata payees = batch.payees;
        uint256 payeeCount = payees.length;
        uint256 payeeOffset;
        assembly ("memory-safe") {
            payeeOffset := payees.offset
        }
        uint256 previous;
        for (uint256 i; i < payeeCount; ++i) {
            uint256 payee;
            assembly ("memory-safe") {
                payee := calldataload(add(payeeOffset, shl(5, i)))
            }
            // A word with bits above 160 is not an address: treat it like an out-of-order entry.
            if (payee == 0) revert ZeroPayee(i);
            if (payee <= previous || payee >> 160 != 0) revert PayeesNotSorted(i);
            previous = payee;
        }
        bytes32 payeesHash;
        uint256 free;
        assembly ("memory-safe") {
            // Hash the array's words in place (EIP-712 encodes address[] as its 32-byte words).
            free := mload(0x40)
            calldatacopy(free, payeeOffset, shl(5, payeeCount))
            payeesHash := keccak256(free, shl(5, payeeCount))
        }

        bytes calldata payments = batch.payments;
        if (payments.length == 0) revert EmptyBatch();
        tally.payments = payments;
        uint256[] memory credits = new uint256[](payeeCount);
        uint256 cursor;
        uint256 end;
        assembly ("memory-safe") {
            cursor := payments.offset
            end := add(cursor, payments.length)
        }
        uint256 total;
        for (uint256 i; cursor < end; ++i) {
            if (cursor + PAYMENT_HEADER > end) revert MalformedPayments(i);
            uint256 amount;
            uint256 legCount;
            assembly ("memory-safe") {
                amount := shr(128, calldataload(add(cursor, 32)))
                legCount := shr(248, calldataload(add(cursor, 48)))
            }
            if (amount == 0) revert ZeroAmount(i);
            if (amount > maxPayment) revert PaymentTooLarge(i, amount, maxPayment);
            if (legCount == 0) revert EmptySplit(i);
            uint256 legs = cursor + PAYMENT_HEADER;
            cursor = legs + legCount * LEG_SIZE;
            if (cursor > end) revert MalformedPayments(i);
            _split(legs, legCount, i, amount, credits);
            unchecked {
                // Cannot overflow: each amount is below 2**128 and there are far fewer than 2**128 of them.
                total += amount;
            }
        }
        tally.total = total;
        tally.credits = credits;
        tally.structHash = keccak256(
            abi.encode(
                BATCH_TYPEHASH,
                batch.batchId,
                batch.nonce,
                batch.deadline,
                batch.token,
                batch.funder,
                batch.funding,
                payeesHash,
                keccak256(tally.payments)
            )
        );
    }

    /// @dev Splits one payment, whose `legCount` packed legs start at calldata offset `legs`, into `credits`.
    ///      Values come from fixed-width fields (uint16 payee, uint32 share), so they are in range by
    ///      construction; every leg but the first gets its rounded-down portion, the first the remainder.
    function _split(
        uint256 legs,
        uint256 legCount,
        uint256 paymentIndex,
        uint256 amount,
        uint256[] memory credits
    ) private pure {
        uint256 payeeCount = credits.length;
        uint256 shareSum;
        uint256 distributed;
        uint256 firstPayee;
        for (uint256 j; j < legCount; ++j) {
            uint256 word;
            assembly ("memory-safe") {
                word := calldataload(add(legs, mul(j, LEG_SIZE)))
            }
            uint256 payee = word >> 240;
            uint256 share = (word >> 208) & 0xffffffff;
            if (share == 0) revert ZeroShare(paymentIndex, j);
            if (payee >= payeeCount) revert UnknownPayee(paymentIndex, j);
            unchecked {
                // Cannot overflow: at most 255 shares below 2**32 each.
                shareSum += share;
            }
            if (j == 0) {
                firstPayee = payee;
            } else {
                uint256 part = SplitMath.portion(amount, share);
                // Cannot overflow: credits are sums of parts of amounts below 2**128 each.
                assembly ("memory-safe") {
                    let c := add(credits, shl(5, add(payee, 1)))
                    mstore(c, add(mload(c), part))
                }
                unchecked {
                    distributed += part;
                }
            }
        }
        if (shareSum != SplitMath.SCALE) revert SharesMismatch(paymentIndex, shareSum);
        // distributed <= amount: the other legs' shares sum to SCALE - share[0].
        assembly ("memory-safe") {
            let c := add(credits, shl(5, add(firstPayee, 1)))
            mstore(c, add(mload(c), sub(amount, distributed)))
        }
    }

    function _recoverSigner(bytes32 digest, bytes calldata signature) private pure returns (address signer) {
        (address recovered, ECDSA.RecoverError err, bytes32 arg) = ECDSA.tryRecoverCalldata(digest, signature);
        if (err == ECDSA.RecoverError.InvalidSignatureLength) revert InvalidSignatureLength(uint256(arg));
        if (err == ECDSA.RecoverError.InvalidSignatureS) revert InvalidSignatureS(arg);
        if (err != ECDSA.RecoverError.NoError) revert InvalidSignature();
        return recovered;
    }

    function _useNonce(Layout storage $, address signer, uint256 nonce) private {
        // forge-lint: disable-next-line(incorrect-shift)
        uint256 bit = 1 << (nonce & 0xff);
        mapping(uint256 => uint256) storage bitmap = $.nonceBitmap[signer];
        uint256 word = bitmap[nonce >> 8];
        if (word & bit != 0) revert NonceAlreadyUsed(signer, nonce);
        bitmap[nonce >> 8] = word | bit;
    }

    function _consumeDailyCap(TokenConfig storage cfg, address token, uint256 total) private {
        uint64 today = uint64(block.timestamp / 1 days);
        uint256 spent = cfg.day == today ? cfg.spentToday : 0;
        uint256 cap = cfg.dailyCap;
        uint256 remaining = spent >= cap ? 0 : cap - spent;
        if (total > remaining) revert DailyCapExceeded(token, total, remaining);
        // Fits: spent + total <= dailyCap, a uint128.
        // forge-lint: disable-next-line(unsafe-typecast)
        cfg.spentToday = uint128(spent + total);
        cfg.day = today;
    }

    function _draw(Layout storage $, Batch calldata batch, uint256 total) private {
        address token = batch.token;
        if (batch.funding == FUNDING_DEPOSIT) {
            if (msg.value != 0) revert WrongValue(0, msg.value);
            Account storage funder = $.accounts[token][batch.funder];
            uint256 available = funder.balance;
            if (available < total) revert InsufficientBalance(token, batch.funder, total, available);
            unchecked {
                // forge-lint: disable-next-line(unsafe-typecast)
                funder.balance = uint248(available - total); // below the stored uint248
            }
        } else if (batch.funding == FUNDING_PULL) {
            if (token == address(0)) {
                if (msg.value != total) revert WrongValue(total, msg.value);
            } else {
                if (msg.value != 0) revert WrongValue(0, msg.value);
                uint256 received = _pullToken(IERC20(token), batch.funder, total);
                if (received != total) revert FeeOnTransferToken(token, total, received);
            }
        } else {
            revert InvalidFunding(batch.funding);
        }
    }

    /// @dev Applies the credits and returns them packed for the event: every payee in order, 36 bytes each.
    ///      The hot path (pull) reads and writes each payee's `Account` slot once, in assembly: the layout is
    ///      `balance` in the low 248 bits and `push` in the top byte (Solidity's packing of `Account`).
    function _credit(Layout storage $, Batch calldata batch, uint256[] memory credits)
        private
        returns (bytes memory packed)
    {
        address token = batch.token;
        mapping(address => Account) storage accounts = $.accounts[token];
        address[] calldata payees = batch.payees;
        uint256 payeeCount = credits.length;
        packed = new bytes(payeeCount * 36);
        uint256 cursor;
        uint256 payeeOffset;
        uint256 accountsSlot;
        assembly ("memory-safe") {
            cursor := add(packed, 0x20)
            payeeOffset := payees.offset
            accountsSlot := accounts.slot
        }
        for (uint256 i; i < payeeCount; ++i) {
            uint256 amount;
            address payee;
            uint256 slot;
            uint256 word;
            // Payees were checked (clean, non-zero, ascending) by `_tally`; credits has one entry per payee.
            // Writes 20 + 16 bytes; the overlap into the next entry is overwritten by it, and the last write
            // ends in free memory past `packed`, which nothing has claimed yet.
            assembly ("memory-safe") {
                amount := mload(add(credits, shl(5, add(i, 1))))
                payee := calldataload(add(payeeOffset, shl(5, i)))
                mstore(cursor, shl(96, payee))
                mstore(add(cursor, 20), shl(128, amount))
                cursor := add(cursor, 36)
                mstore(0, payee)
                mstore(0x20, accountsSlot)
                slot := keccak256(0, 0x40)
            }
            if (amount == 0) continue;
            assembly ("memory-safe") {
                word := sload(slot)
            }
            if (word >> 248 != 0) {
                // Opted in to push.
                if (_trySend(token, payee, amount)) {
                    emit PushedOut(token, payee, amount);
                    continue;
                }
                emit PushFailed(token, payee, amount);
            }
            // Balance overflow is checked: it must stay below 2**248.
            uint256 credited = (word & BALANCE_MASK) + amount;
            if (credited > BALANCE_MASK) revert SafeCast.SafeCastOverflowedUintDowncast(248, credited);
            assembly ("memory-safe") {
                sstore(slot, or(and(word, not(BALANCE_MASK)), credited))
            }
        }
    }

    // ------------------------------------------------------------------ balances

    /// @inheritdoc ISplitSettlement
    function deposit(address token, address funder, uint256 amount) external nonReentrant whenNotPaused {
        if (funder == address(0)) revert ZeroAddress();
        if (amount == 0) revert ZeroValue();
        Layout storage $ = _layout();
        if (token == address(0) || !$.tokens[token].enabled) revert TokenNotEnabled(token);
        uint256 received = _pullToken(IERC20(token), msg.sender, amount);
        if (received == 0) revert ZeroValue();
        _addBalance($, token, funder, received);
        emit Deposited(token, funder, msg.sender, received);
    }

    /// @inheritdoc ISplitSettlement
    function depositNative(address funder) external payable nonReentrant whenNotPaused {
        if (funder == address(0)) revert ZeroAddress();
        if (msg.value == 0) revert ZeroValue();
        Layout storage $ = _layout();
        if (!$.tokens[address(0)].enabled) revert TokenNotEnabled(address(0));
        _addBalance($, address(0), funder, msg.value);
        emit Deposited(address(0), funder, msg.sender, msg.value);
    }

    /// @inheritdoc ISplitSettlement
    function withdraw(address token, uint256 amount, address to) external nonReentrant whenNotPaused {
        if (to == address(0)) revert ZeroAddress();
        if (amount == 0) revert ZeroValue();
        Account storage account = _layout().accounts[token][msg.sender];
        uint256 available = account.balance;
        if (available < amount) revert InsufficientBalance(token, msg.sender, amount, available);
        unchecked {
            // forge-lint: disable-next-line(unsafe-typecast)
            account.balance = uint248(available - amount); // below the stored uint248
        }
        emit Withdrawn(token, msg.sender, to, amount);
        if (token == address(0)) {
            (bool ok,) = to.call{value: amount}("");
            if (!ok) revert NativeTransferFailed(to, amount);
        } else {
            IERC20(token).safeTransfer(to, amount);
        }
    }

    /// @inheritdoc ISplitSettlement
    function setPushPreference(address token, bool push) external {
        _layout().accounts[token][msg.sender].push = push;
        emit PushPreferenceSet(token, msg.sender, push);
    }

    /// @inheritdoc ISplitSettlement
    function invalidateNonce(uint256 nonce) external {
        _useNonce(_layout(), msg.sender, nonce);
        emit NonceInvalidated(msg.sender, nonce);
    }

    /// @dev Gas given to a native push, so a payee's fallback cannot burn the batch's gas.
    uint256 private constant NATIVE_PUSH_GAS = 30_000;

    function _trySend(address token, address to, uint256 amount) private returns (bool ok) {
        if (token == address(0)) {
            (ok,) = to.call{value: amount, gas: NATIVE_PUSH_GAS}("");
        } else {
            ok = IERC20(token).trySafeTransfer(to, amount);
        }
    }

    /// @dev Pulls `amount` from `from` and returns what actually arrived.
    function _pullToken(IERC20 token, address from, uint256 amount) private returns (uint256) {
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(from, address(this), amount);
        return token.balanceOf(address(this)) - before;
    }

    function _addBalance(Layout storage $, address token, address account, uint256 amount) private {
        Account storage a = $.accounts[token][account];
        a.balance = SafeCast.toUint248(uint256(a.balance) + amount);
    }

    // ------------------------------------------------------------------ governance

    /// @notice Authorises or removes a batch signer.
    function setSigner(address signer, bool authorised) external onlyOwner {
        if (signer == address(0)) revert ZeroAddress();
        _layout().signers[signer] = authorised;
        emit SignerSet(signer, authorised);
    }

    /// @notice Sets a token's limits. `address(0)` is the native coin.
    function setTokenConfig(address token, bool enabled, uint128 maxPayment, uint128 dailyCap)
        external
        onlyOwner
    {
        TokenConfig storage cfg = _layout().tokens[token];
        cfg.enabled = enabled;
        cfg.maxPayment = maxPayment;
        cfg.dailyCap = dailyCap;
        emit TokenConfigured(token, enabled, maxPayment, dailyCap);
    }

    /// @notice Sets the guardian, who may pause at once.
    function setGuardian(address guardian_) external onlyOwner {
        _layout().guardian = guardian_;
        emit GuardianSet(guardian_);
    }

    /// @notice Pauses settlement, deposits and withdrawals. The guardian or the owner.
    function pause() external {
        if (msg.sender != _layout().guardian && msg.sender != owner()) revert NotGuardian(msg.sender);
        _pause();
    }

    /// @notice Unpauses. Only the owner (through the timelock).
    function unpause() external onlyOwner {
        _unpause();
    }

    function _authorizeUpgrade(address) internal override onlyOwner {}

    // ------------------------------------------------------------------ views

    /// @notice Whether `signer` may sign batches.
    function isSigner(address signer) external view returns (bool) {
        return _layout().signers[signer];
    }

    /// @notice Whether `signer`'s `nonce` is used.
    function isNonceUsed(address signer, uint256 nonce) external view returns (bool) {
        // forge-lint: disable-next-line(incorrect-shift)
        return _layout().nonceBitmap[signer][nonce >> 8] & (1 << (nonce & 0xff)) != 0;
    }

    /// @notice The internal balance of `account` in `token`.
    function balanceOf(address token, address account) external view returns (uint256) {
        return _layout().accounts[token][account].balance;
    }

    /// @notice Whether `account` has credits in `token` pushed at settlement.
    function pushPreference(address token, address account) external view returns (bool) {
        return _layout().accounts[token][account].push;
    }

    /// @notice A token's limits and today's use.
    function tokenConfig(address token) external view returns (TokenConfig memory) {
        return _layout().tokens[token];
    }

    /// @notice The guardian.
    function guardian() external view returns (address) {
        return _layout().guardian;
    }

    /// @notice The EIP-712 domain separator on this chain, for this proxy.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice The version of this implementation.
    function version() external pure virtual returns (string memory) {
        return "1";
    }

    function _layout() private pure returns (Layout storage $) {
        assembly ("memory-safe") {
            $.slot := LAYOUT_SLOT
        }
    }
}
