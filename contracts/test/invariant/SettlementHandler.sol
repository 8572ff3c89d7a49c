// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";
import {ERC1967Proxy} from "@openzeppelin/contracts/proxy/ERC1967/ERC1967Proxy.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

import {SplitSettlement} from "../../src/SplitSettlement.sol";
import {ISplitSettlement} from "../../src/interfaces/ISplitSettlement.sol";
import {TestToken, RejectingReceiver} from "../utils/Tokens.sol";
import {Draft, DraftPayment, Leg, Drafts} from "../utils/Draft.sol";
import {Shipped} from "../utils/Shipped.sol";

/// @notice Drives a SplitSettlement proxy with bounded deposits, signed batches, replays, withdrawals
///         and push preferences, and keeps ghost totals of every flow per token (ERC-20 and native).
/// @dev Every action bounds its inputs so that it never reverts (`fail_on_revert = true`); a revert is a
///      finding. Batches are signed with the one authorised signer's key.
contract SettlementHandler is Test {
    uint256 internal constant SCALE = 1_000_000;
    uint256 internal constant SIGNER_KEY = 0xA11CE;
    uint128 internal constant MAX_PAYMENT = 1e30;
    uint256 internal constant PAYEE_COUNT = 6;

    SplitSettlement public settlement;
    TestToken public token;
    address public signer;
    address public rejecting;
    address public immutable sink = makeAddr("sink");

    /// @dev Sorted; one of them is a RejectingReceiver, so native pushes to it fail and are credited.
    address[] internal payeePool;
    address[] internal funders;
    /// @dev payeePool followed by funders: everyone who can hold an internal balance.
    address[] internal accounts;

    // ------------------------------------------------------------ ghosts, per token

    mapping(address token => uint256) public ghostDeposited;
    mapping(address token => uint256) public ghostPulled;
    mapping(address token => uint256) public ghostDrawn;
    mapping(address token => uint256) public ghostCredited;
    mapping(address token => uint256) public ghostPushed;
    mapping(address token => uint256) public ghostWithdrawn;

    struct UsedNonce {
        address signer;
        uint256 nonce;
    }

    UsedNonce[] internal usedNonces;
    uint256 public nextNonce = 1;

    /// @dev Settled batches (abi-encoded) and their signatures, for replays.
    bytes[] internal settledBatches;
    bytes[] internal settledSignatures;

    uint256 public replayAttempts;
    uint256 public replaySuccesses;
    uint256 public replayWrongErrors;
    /// @dev A payee's measured credit (internal + pushed) differed from the independently computed split.
    uint256 public creditMismatches;
    /// @dev A withdrawal did not deliver exactly the amount to its recipient.
    uint256 public withdrawMismatches;

    mapping(bytes32 action => uint256) public calls;

    constructor() {
        signer = vm.addr(SIGNER_KEY);
        SplitSettlement impl = Shipped.splitSettlement();
        settlement = SplitSettlement(
            address(
                new ERC1967Proxy(
                    address(impl),
                    abi.encodeCall(SplitSettlement.initialize, (address(this), makeAddr("guardian")))
                )
            )
        );
        token = new TestToken("USD");
        settlement.setSigner(signer, true);
        settlement.setTokenConfig(address(token), true, MAX_PAYMENT, type(uint128).max);
        settlement.setTokenConfig(address(0), true, MAX_PAYMENT, type(uint128).max);

        rejecting = address(new RejectingReceiver());
        for (uint256 i; i < PAYEE_COUNT - 1; ++i) {
            payeePool.push(makeAddr(string.concat("payee", vm.toString(i))));
        }
        payeePool.push(rejecting);
        _sort(payeePool);
        funders.push(makeAddr("funderA"));
        funders.push(makeAddr("funderB"));
        funders.push(makeAddr("funderC"));
        for (uint256 i; i < payeePool.length; ++i) {
            accounts.push(payeePool[i]);
        }
        // Start with some pushers (the actions toggle them): the rejecting receiver's native pushes fail.
        vm.prank(rejecting);
        settlement.setPushPreference(address(0), true);
        vm.prank(payeePool[0] == rejecting ? payeePool[1] : payeePool[0]);
        settlement.setPushPreference(address(token), true);
        for (uint256 i; i < funders.length; ++i) {
            accounts.push(funders[i]);
        }
    }

    // ------------------------------------------------------------ actions

    /// @notice A funder deposits test tokens into its own balance.
    function deposit(uint256 funderSeed, uint256 amount) external {
        calls["deposit"]++;
        _deposit(address(token), funders[funderSeed % funders.length], _bound(amount, 1, 1e27));
    }

    /// @notice A funder deposits the native coin into its own balance.
    function depositNative(uint256 funderSeed, uint256 amount) external {
        calls["depositNative"]++;
        _deposit(address(0), funders[funderSeed % funders.length], _bound(amount, 1, 10_000 ether));
    }

    /// @notice Settles a fresh random batch: 1..5 payments of 1..4 legs over a sorted subset of the pool.
    function settle(uint256 seed, bool native, bool pull, uint256 funderSeed) external {
        calls["settle"]++;
        address tok = native ? address(0) : address(token);
        address funder = funders[funderSeed % funders.length];
        uint256 nonce = _freshNonce(seed);
        (Draft memory b, uint256[] memory expected, uint256 total) =
            _randomBatch(seed, tok, funder, nonce, pull);

        uint256 value;
        if (pull) {
            ghostPulled[tok] += total;
            if (native) {
                value = total;
                vm.deal(address(this), address(this).balance + total);
            } else {
                token.mint(funder, total);
                vm.prank(funder);
                token.approve(address(settlement), total);
            }
        } else {
            uint256 available = settlement.balanceOf(tok, funder);
            if (available < total) _deposit(tok, funder, total - available);
        }

        (uint256[] memory internalBefore, uint256[] memory externalBefore) = _snapshot(tok, b.payees);
        bytes memory sig = _signBatch(b);
        settlement.settleBatch{value: value}(Drafts.pack(b), sig);
        ghostDrawn[tok] += total;
        calls[pull ? bytes32("settledPull") : bytes32("settledDeposit")]++;
        _recordCredits(tok, b.payees, expected, internalBefore, externalBefore);

        usedNonces.push(UsedNonce(signer, nonce));
        settledBatches.push(abi.encode(b));
        settledSignatures.push(sig);
    }

    /// @notice Resubmits an already settled batch with its signature; it must fail with NonceAlreadyUsed.
    function replay(uint256 index) external {
        calls["replay"]++;
        if (settledBatches.length == 0) return;
        index %= settledBatches.length;
        Draft memory b = abi.decode(settledBatches[index], (Draft));
        uint256 value;
        if (b.token == address(0) && b.funding == 1) {
            for (uint256 i; i < b.payments.length; ++i) {
                value += b.payments[i].amount;
            }
            vm.deal(address(this), address(this).balance + value);
        }
        replayAttempts++;
        try settlement.settleBatch{value: value}(Drafts.pack(b), settledSignatures[index]) {
            replaySuccesses++;
        } catch (bytes memory reason) {
            bytes memory want =
                abi.encodeWithSelector(ISplitSettlement.NonceAlreadyUsed.selector, signer, b.nonce);
            if (keccak256(reason) != keccak256(want)) replayWrongErrors++;
        }
    }

    /// @notice The signer cancels a fresh nonce.
    function invalidateNonce(uint256 seed) external {
        calls["invalidateNonce"]++;
        uint256 nonce = _freshNonce(seed);
        vm.prank(signer);
        settlement.invalidateNonce(nonce);
        usedNonces.push(UsedNonce(signer, nonce));
    }

    /// @notice An account withdraws a random part of its balance (to itself, or to a sink if it rejects
    ///         the native coin).
    function withdraw(uint256 actorSeed, bool native, uint256 amount) external {
        calls["withdraw"]++;
        address tok = native ? address(0) : address(token);
        address actor = accounts[actorSeed % accounts.length];
        uint256 available = settlement.balanceOf(tok, actor);
        if (available == 0) return;
        amount = _bound(amount, 1, available);
        address to = actor == rejecting ? sink : actor;
        uint256 before = _externalBalance(tok, to);
        vm.prank(actor);
        settlement.withdraw(tok, amount, to);
        ghostWithdrawn[tok] += amount;
        if (_externalBalance(tok, to) - before != amount) withdrawMismatches++;
    }

    /// @notice An account chooses push or pull for a token.
    function setPushPreference(uint256 actorSeed, bool native, bool push) external {
        calls["setPushPreference"]++;
        address tok = native ? address(0) : address(token);
        address actor = accounts[actorSeed % accounts.length];
        vm.prank(actor);
        settlement.setPushPreference(tok, push);
    }

    // ------------------------------------------------------------ views for the invariants

    function allAccounts() external view returns (address[] memory) {
        return accounts;
    }

    function usedNonceCount() external view returns (uint256) {
        return usedNonces.length;
    }

    function usedNonceAt(uint256 i) external view returns (address, uint256) {
        UsedNonce storage u = usedNonces[i];
        return (u.signer, u.nonce);
    }

    function settledCount() external view returns (uint256) {
        return settledBatches.length;
    }

    /// @notice Every account withdraws its whole balance in both tokens (not a fuzzed action).
    function drainAll() external {
        address[2] memory toks = [address(token), address(0)];
        for (uint256 t; t < 2; ++t) {
            for (uint256 i; i < accounts.length; ++i) {
                address actor = accounts[i];
                uint256 available = settlement.balanceOf(toks[t], actor);
                if (available == 0) continue;
                vm.prank(actor);
                settlement.withdraw(toks[t], available, actor == rejecting ? sink : actor);
                ghostWithdrawn[toks[t]] += available;
            }
        }
    }

    // ------------------------------------------------------------ internals

    function _deposit(address tok, address funder, uint256 amount) internal {
        if (tok == address(0)) {
            vm.deal(funder, funder.balance + amount);
            vm.prank(funder);
            settlement.depositNative{value: amount}(funder);
        } else {
            token.mint(funder, amount);
            vm.startPrank(funder);
            token.approve(address(settlement), amount);
            settlement.deposit(tok, funder, amount);
            vm.stopPrank();
        }
        ghostDeposited[tok] += amount;
    }

    /// @dev Nonces come from a counter that skips ahead by 1..300, so they spread over bitmap words.
    function _freshNonce(uint256 seed) internal returns (uint256 nonce) {
        nonce = nextNonce;
        nextNonce += 1 + uint256(keccak256(abi.encode(seed, "skip"))) % 300;
    }

    function _rand(uint256 seed, uint256 salt) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode(seed, salt)));
    }

    /// @dev A valid batch and, independently computed, what each payee index must be credited.
    function _randomBatch(uint256 seed, address tok, address funder, uint256 nonce, bool pull)
        internal
        view
        returns (Draft memory b, uint256[] memory expected, uint256 total)
    {
        // A non-empty subset of the sorted pool is itself sorted.
        uint256 mask = 1 + _rand(seed, 0) % ((1 << PAYEE_COUNT) - 1);
        uint256 k;
        for (uint256 i; i < PAYEE_COUNT; ++i) {
            if (mask & (1 << i) != 0) ++k;
        }
        b.payees = new address[](k);
        k = 0;
        for (uint256 i; i < PAYEE_COUNT; ++i) {
            if (mask & (1 << i) != 0) b.payees[k++] = payeePool[i];
        }

        b.batchId = keccak256(abi.encode("batch", nonce));
        b.nonce = nonce;
        b.deadline = uint64(block.timestamp + 30 days);
        b.token = tok;
        b.funder = funder;
        b.funding = pull ? 1 : 0;
        b.payments = new DraftPayment[](1 + _rand(seed, 1) % 5);
        expected = new uint256[](k);
        uint256 maxAmount = tok == address(0) ? 100 ether : 1e24;
        for (uint256 p; p < b.payments.length; ++p) {
            uint256 r = _rand(seed, 100 + p);
            // A third of the payments are tiny, where rounding dominates.
            uint256 amount = r % 3 == 0 ? 1 + (r >> 8) % 100 : 1 + (r >> 8) % maxAmount;
            Leg[] memory legs = _randomLegs(r >> 128, k);
            uint256 others;
            for (uint256 j = 1; j < legs.length; ++j) {
                uint256 part = Math.mulDiv(amount, legs[j].share, SCALE);
                expected[legs[j].payee] += part;
                others += part;
            }
            expected[legs[0].payee] += amount - others;
            b.payments[p] = DraftPayment({
                paymentId: keccak256(abi.encode(nonce, p)), amount: uint128(amount), legs: legs
            });
            total += amount;
        }
    }

    /// @dev 1..4 legs over `payeeCount` payees (a payee may repeat), shares >= 1 summing to SCALE.
    function _randomLegs(uint256 seed, uint256 payeeCount) internal pure returns (Leg[] memory legs) {
        uint256 n = 1 + _rand(seed, 0) % 4;
        legs = new Leg[](n);
        uint256[] memory weights = new uint256[](n);
        uint256 weightSum;
        for (uint256 j; j < n; ++j) {
            weights[j] = 1 + _rand(seed, 10 + j) % 1000;
            weightSum += weights[j];
        }
        uint256 free = SCALE - n;
        uint256 others;
        for (uint256 j; j < n; ++j) {
            uint256 share = j == 0 ? 0 : 1 + Math.mulDiv(weights[j], free, weightSum);
            others += share;
            legs[j] = Leg({payee: uint16(_rand(seed, 20 + j) % payeeCount), share: uint32(share)});
        }
        legs[0].share = uint32(SCALE - others);
    }

    function _signBatch(Draft memory b) internal view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(SIGNER_KEY, settlement.batchDigest(Drafts.pack(b)));
        return abi.encodePacked(r, s, v);
    }

    function _externalBalance(address tok, address account) internal view returns (uint256) {
        return tok == address(0) ? account.balance : token.balanceOf(account);
    }

    function _snapshot(address tok, address[] memory payees)
        internal
        view
        returns (uint256[] memory internalBal, uint256[] memory externalBal)
    {
        internalBal = new uint256[](payees.length);
        externalBal = new uint256[](payees.length);
        for (uint256 i; i < payees.length; ++i) {
            internalBal[i] = settlement.balanceOf(tok, payees[i]);
            externalBal[i] = _externalBalance(tok, payees[i]);
        }
    }

    /// @dev Measures what each payee actually got (credited internally or pushed out) against `expected`.
    function _recordCredits(
        address tok,
        address[] memory payees,
        uint256[] memory expected,
        uint256[] memory internalBefore,
        uint256[] memory externalBefore
    ) internal {
        for (uint256 i; i < payees.length; ++i) {
            uint256 credited =
                settlement.balanceOf(tok, payees[i]) - internalBefore[i];
            uint256 pushed = _externalBalance(tok, payees[i]) - externalBefore[i];
            ghostCredited[tok] += credited + pushed;
            ghostPushed[tok] += pushed;
            if (credited + pushed != expected[i]) creditMismatches++;
            if (pushed != 0) calls["pushedOut"]++;
            if (credited != 0 && settlement.pushPreference(tok, payees[i])) calls["pushFailed"]++;
        }
    }

    function _sort(address[] storage a) internal {
        for (uint256 i = 1; i < a.length; ++i) {
            address key = a[i];
            uint256 j = i;
            while (j > 0 && a[j - 1] > key) {
                a[j] = a[j - 1];
                --j;
            }
            a[j] = key;
        }
    }
}
