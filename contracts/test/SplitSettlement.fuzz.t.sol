// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

import {Base} from "./Base.t.sol";
import {Draft, DraftPayment, Leg} from "./utils/Draft.sol";
import {ISplitSettlement} from "../src/interfaces/ISplitSettlement.sol";

/// @notice Property tests: the split rounding rule over the whole amount range, and signature replay
///         protection (nonces, chain id, deadline, signer removal).
contract SplitSettlementFuzzTest is Base {
    /// @dev Foundry's default chain id; signatures are made on it before switching chains.
    uint256 internal constant ORIGINAL_CHAIN = 31337;
    /// @dev The largest chain id accepted by EIP-2294 bounds (and so by `vm.chainId`).
    uint256 internal constant MAX_CHAIN_ID = type(uint64).max / 2 - 36;

    // ------------------------------------------------------------ helpers

    /// @dev Normalises `n` raw weights to shares of at least 1 summing exactly to SCALE. The first share
    ///      takes what rounding leaves, which can only make it larger.
    function _shares(uint256[8] memory weights, uint256 n) internal pure returns (uint256[] memory shares) {
        shares = new uint256[](n);
        uint256 weightSum;
        for (uint256 j; j < n; ++j) {
            weights[j] = _bound(weights[j], 1, 1e18);
            weightSum += weights[j];
        }
        uint256 free = SCALE - n; // what is left after giving every leg 1
        uint256 others;
        for (uint256 j = 1; j < n; ++j) {
            shares[j] = 1 + Math.mulDiv(weights[j], free, weightSum);
            others += shares[j];
        }
        shares[0] = SCALE - others;
    }

    /// @dev A permutation of 0..n-1 (Fisher-Yates driven by `seed`): leg j pays payee `perm[j]`.
    function _permutation(uint256 n, uint256 seed) internal pure returns (uint256[] memory perm) {
        perm = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            perm[i] = i;
        }
        for (uint256 i = n; i > 1; --i) {
            uint256 k = uint256(keccak256(abi.encode(seed, i))) % i;
            (perm[i - 1], perm[k]) = (perm[k], perm[i - 1]);
        }
    }

    function _holdings(address token_) internal view returns (uint256) {
        return token_ == address(0) ? address(settlement).balance : token.balanceOf(address(settlement));
    }

    // ------------------------------------------------------------ split math

    /// @notice Every leg but the first gets floor(amount * share / SCALE), the first gets the remainder;
    ///         the credits sum to the amount, which is drawn from the funder's deposit and stays held.
    function testFuzz_split_floorPerLegRemainderToFirst(
        uint256 amount,
        uint256 legCount,
        uint256[8] memory weights,
        uint256 payeeSalt,
        uint256 order,
        bool native
    ) public {
        address tok = native ? address(0) : address(token);
        settlement.setTokenConfig(tok, true, type(uint128).max, type(uint128).max);
        amount = _bound(amount, 1, type(uint128).max);
        uint256 n = _bound(legCount, 1, 8);

        uint256[] memory shares = _shares(weights, n);
        uint256[] memory perm = _permutation(n, order);
        address[] memory payees = _sortedPayees(n, payeeSalt);

        // Independent expectation, with full-width math.
        Leg[] memory legs = new Leg[](n);
        uint256[] memory expected = new uint256[](n); // by payee index
        uint256 shareSum;
        uint256 others;
        for (uint256 j; j < n; ++j) {
            assertGe(shares[j], 1, "share >= 1");
            shareSum += shares[j];
            legs[j] = _leg(perm[j], shares[j]);
            if (j != 0) {
                uint256 part = Math.mulDiv(amount, shares[j], SCALE);
                expected[perm[j]] = part;
                others += part;
            }
        }
        assertEq(shareSum, SCALE, "shares sum to SCALE");
        expected[perm[0]] = amount - others;

        Draft memory b = _emptyBatch(tok, 1, payees, 1);
        b.payments[0] = _payment(keccak256(abi.encode(payeeSalt)), amount, legs);

        (uint256[] memory preview, uint256 previewTotal) = settlement.previewCredits(_pack(b));
        assertEq(previewTotal, amount, "preview total");

        _fundDeposit(tok, amount);
        uint256 heldBefore = _holdings(tok);
        uint256 funderBefore = settlement.balanceOf(tok, funder);

        settlement.settleBatch(_pack(b), _sign(b, signerKey));

        uint256 credited;
        for (uint256 i; i < n; ++i) {
            uint256 got = settlement.balanceOf(tok, payees[i]);
            assertEq(got, expected[i], "credit per payee");
            assertEq(preview[i], expected[i], "preview per payee");
            credited += got;
        }
        assertEq(credited, amount, "credits sum to amount");
        assertEq(_holdings(tok), heldBefore, "holdings unchanged");
        assertEq(settlement.balanceOf(tok, funder), funderBefore - amount, "funder drawn by amount");
    }

    // ------------------------------------------------------------ replay protection

    /// @notice A settled batch cannot be settled again: same signer, same nonce.
    function testFuzz_replay_sameBatchTwiceReverts(uint256 nonce) public {
        _fundDeposit(address(token), 200);
        Draft memory b = _threeWay(nonce, 100);
        bytes memory sig = _sign(b, signerKey);
        settlement.settleBatch(_pack(b), sig);
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.NonceAlreadyUsed.selector, signer, nonce));
        settlement.settleBatch(_pack(b), sig);
        // Drawn once only.
        assertEq(settlement.balanceOf(address(token), funder), 100);
        assertEq(settlement.balanceOf(address(token), merchant), 90);
    }

    /// @notice A signature made on one chain recovers to some other address on another chain.
    function testFuzz_replay_otherChainRecoversOtherSigner(uint256 other, uint256 nonce) public {
        other = _bound(other, 1, MAX_CHAIN_ID);
        vm.assume(other != ORIGINAL_CHAIN);
        vm.chainId(ORIGINAL_CHAIN);
        _fundDeposit(address(token), 100);
        Draft memory b = _threeWay(nonce, 100);
        bytes memory sig = _sign(b, signerKey);

        vm.chainId(other);
        vm.expectPartialRevert(ISplitSettlement.UnauthorizedSigner.selector);
        settlement.settleBatch(_pack(b), sig);
        assertFalse(settlement.isNonceUsed(signer, nonce));

        // The same signature is still good on the chain it was made for.
        vm.chainId(ORIGINAL_CHAIN);
        settlement.settleBatch(_pack(b), sig);
        assertTrue(settlement.isNonceUsed(signer, nonce));
    }

    /// @notice Any time after the deadline the batch is expired; the deadline itself is still valid.
    function testFuzz_replay_expiredDeadline(uint256 delta, uint256 nonce) public {
        delta = _bound(delta, 1, type(uint64).max);
        _fundDeposit(address(token), 100);
        Draft memory b = _threeWay(nonce, 100);
        bytes memory sig = _sign(b, signerKey);
        uint256 deadline = b.deadline;

        vm.warp(deadline + delta);
        vm.expectRevert(
            abi.encodeWithSelector(ISplitSettlement.BatchExpired.selector, deadline, deadline + delta)
        );
        settlement.settleBatch(_pack(b), sig);

        vm.warp(deadline);
        settlement.settleBatch(_pack(b), sig);
        assertTrue(settlement.isNonceUsed(signer, nonce));
    }

    /// @notice A batch signed by a signer that is removed before settlement is refused.
    function testFuzz_replay_signerRemovedAfterSigning(uint256 nonce) public {
        _fundDeposit(address(token), 100);
        Draft memory b = _threeWay(nonce, 100);
        bytes memory sig = _sign(b, signerKey);
        settlement.setSigner(signer, false);
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.UnauthorizedSigner.selector, signer));
        settlement.settleBatch(_pack(b), sig);
        assertFalse(settlement.isNonceUsed(signer, nonce));
    }

    /// @notice Using nonce n (by settling or invalidating) marks n and nothing else, even in the same
    ///         bitmap word, and nothing for another signer.
    function testFuzz_nonceBitmap_usingOneLeavesOthersUnused(
        uint256 n,
        uint256 m,
        bool sameWord,
        bool invalidate
    ) public {
        if (sameWord) m = (n & ~uint256(0xff)) | (m & 0xff);
        if (m == n) m = n ^ 1;
        address other = vm.addr(0xB0B);
        assertFalse(settlement.isNonceUsed(signer, n));
        assertFalse(settlement.isNonceUsed(signer, m));

        if (invalidate) {
            vm.prank(signer);
            settlement.invalidateNonce(n);
        } else {
            _fundDeposit(address(token), 100);
            Draft memory b = _threeWay(n, 100);
            settlement.settleBatch(_pack(b), _sign(b, signerKey));
        }

        assertTrue(settlement.isNonceUsed(signer, n), "n used");
        assertFalse(settlement.isNonceUsed(signer, m), "m unused");
        assertFalse(settlement.isNonceUsed(other, n), "other signer unused");

        // m is still usable.
        vm.prank(signer);
        settlement.invalidateNonce(m);
        assertTrue(settlement.isNonceUsed(signer, m));
    }
}
