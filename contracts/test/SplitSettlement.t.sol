// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Vm} from "forge-std/Vm.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";

import {Base} from "./Base.t.sol";
import {Draft, DraftPayment, Leg} from "./utils/Draft.sol";
import {ISplitSettlement} from "../src/interfaces/ISplitSettlement.sol";
import {SplitSettlement} from "../src/SplitSettlement.sol";
import {FeeToken, BlockingToken, RejectingReceiver, GasBurner, TestToken} from "./utils/Tokens.sol";
import {Shipped} from "./utils/Shipped.sol";

contract SplitSettlementTest is Base {
    function _expectRevertSettle(Draft memory b, bytes memory err) internal {
        bytes memory sig = _sign(b, signerKey);
        vm.expectRevert(err);
        settlement.settleBatch(_pack(b), sig);
    }

    // ------------------------------------------------------------ happy paths

    function test_settle_splitsAndCreditsWithRemainderToFirstLeg() public {
        _fundDeposit(address(token), 1001);
        Draft memory b = _threeWay(1, 1001);
        settlement.settleBatch(_pack(b), _sign(b, signerKey));
        // 1001 * 7% = 70.07 -> 70; 1001 * 3% = 30.03 -> 30; merchant gets 1001 - 100 = 901.
        assertEq(settlement.balanceOf(address(token), platform), 70);
        assertEq(settlement.balanceOf(address(token), referrer), 30);
        assertEq(settlement.balanceOf(address(token), merchant), 901);
        assertEq(settlement.balanceOf(address(token), funder), 0);
        assertEq(token.balanceOf(address(settlement)), 1001);
        assertTrue(settlement.isNonceUsed(signer, 1));
    }

    function test_settle_aggregatesRepeatedPayee() public {
        address[] memory payees = new address[](2);
        payees[0] = merchant;
        payees[1] = platform;
        Draft memory b = _emptyBatch(address(token), 7, payees, 2);
        Leg[] memory legs = new Leg[](2);
        legs[0] = _leg(0, 990_000);
        legs[1] = _leg(1, 10_000);
        b.payments[0] = _payment("a", 500, legs);
        b.payments[1] = _payment("b", 250, legs);
        _fundDeposit(address(token), 750);
        vm.recordLogs();
        settlement.settleBatch(_pack(b), _sign(b, signerKey));
        assertEq(settlement.balanceOf(address(token), merchant), 495 + 248);
        assertEq(settlement.balanceOf(address(token), platform), 5 + 2);
        // One packed credit per distinct payee: 2 x 36 bytes.
        bytes memory expected = abi.encodePacked(merchant, uint128(743), platform, uint128(7));
        assertEq(_creditsFromLogs(), expected);
    }

    function test_settle_emitsBatchSettled() public {
        _fundDeposit(address(token), 1001);
        Draft memory b = _threeWay(1, 1001);
        bytes32 digest = settlement.batchDigest(_pack(b));
        bytes memory payments = _pack(b).payments;
        // paymentId | amount | legCount | (payee index, share) x 3
        assertEq(
            payments,
            abi.encodePacked(
                bytes32("p1"),
                uint128(1001),
                uint8(3),
                uint16(0),
                uint32(900_000),
                uint16(1),
                uint32(70_000),
                uint16(2),
                uint32(30_000)
            )
        );
        bytes memory credits =
            abi.encodePacked(merchant, uint128(901), platform, uint128(70), referrer, uint128(30));
        vm.expectEmit(address(settlement));
        emit ISplitSettlement.BatchSettled(
            b.batchId, signer, address(token), digest, funder, 0, 1, 1001, payments, credits
        );
        assertEq(settlement.settleBatch(_pack(b), _sign(b, signerKey)), digest);
    }

    function test_revert_malformedPayments() public {
        ISplitSettlement.Batch memory packed = _pack(_threeWay(1, 100));
        bytes memory truncated = new bytes(packed.payments.length - 1);
        for (uint256 i; i < truncated.length; ++i) {
            truncated[i] = packed.payments[i];
        }
        packed.payments = truncated;
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.MalformedPayments.selector, 0));
        settlement.batchDigest(packed);
        // A second payment cut inside its 49-byte header.
        packed.payments = bytes.concat(_pack(_threeWay(1, 100)).payments, bytes32("p2"));
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.MalformedPayments.selector, 1));
        settlement.batchDigest(packed);
    }

    function test_settle_pullFundingErc20() public {
        Draft memory b = _threeWay(2, 100);
        b.funding = 1;
        token.mint(funder, 100);
        vm.prank(funder);
        token.approve(address(settlement), 100);
        settlement.settleBatch(_pack(b), _sign(b, signerKey));
        assertEq(token.balanceOf(funder), 0);
        assertEq(settlement.balanceOf(address(token), merchant), 90);
        assertEq(token.balanceOf(address(settlement)), 100);
    }

    function test_settle_pullFundingNativeNeedsExactValue() public {
        Draft memory b = _threeWay(3, 100);
        b.token = address(0);
        b.funding = 1;
        bytes memory sig = _sign(b, signerKey);
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.WrongValue.selector, 100, 99));
        settlement.settleBatch{value: 99}(_pack(b), sig);
        settlement.settleBatch{value: 100}(_pack(b), sig);
        assertEq(settlement.balanceOf(address(0), merchant), 90);
        assertEq(address(settlement).balance, 100);
    }

    function test_settle_depositFundingRejectsValue() public {
        _fundDeposit(address(token), 100);
        Draft memory b = _threeWay(3, 100);
        bytes memory sig = _sign(b, signerKey);
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.WrongValue.selector, 0, 1));
        settlement.settleBatch{value: 1}(_pack(b), sig);
    }

    function test_settle_pushesToOptedInPayee() public {
        vm.prank(platform);
        settlement.setPushPreference(address(token), true);
        _fundDeposit(address(token), 1000);
        Draft memory b = _threeWay(4, 1000);
        vm.expectEmit(address(settlement));
        emit ISplitSettlement.PushedOut(address(token), platform, 70);
        settlement.settleBatch(_pack(b), _sign(b, signerKey));
        assertEq(token.balanceOf(platform), 70);
        assertEq(settlement.balanceOf(address(token), platform), 0);
        assertEq(token.balanceOf(address(settlement)), 930);
    }

    function test_settle_blockedPushIsCreditedInstead() public {
        BlockingToken blk = new BlockingToken();
        settlement.setTokenConfig(address(blk), true, MAX_PAYMENT, DAILY_CAP);
        blk.setBlocked(platform, true);
        vm.prank(platform);
        settlement.setPushPreference(address(blk), true);
        Draft memory b = _threeWay(5, 1000);
        b.token = address(blk);
        b.funding = 1;
        blk.mint(funder, 1000);
        vm.prank(funder);
        blk.approve(address(settlement), 1000);
        vm.expectEmit(address(settlement));
        emit ISplitSettlement.PushFailed(address(blk), platform, 70);
        settlement.settleBatch(_pack(b), _sign(b, signerKey));
        assertEq(settlement.balanceOf(address(blk), platform), 70);
        assertEq(settlement.balanceOf(address(blk), merchant), 900);
    }

    function test_settle_nativePushToRejectingOrGreedyReceiverIsCredited() public {
        address rejecting = address(new RejectingReceiver());
        address burner = address(new GasBurner());
        address[] memory payees = new address[](2);
        payees[0] = rejecting;
        payees[1] = burner;
        _sort(payees);
        vm.prank(rejecting);
        settlement.setPushPreference(address(0), true);
        vm.prank(burner);
        settlement.setPushPreference(address(0), true);
        Draft memory b = _emptyBatch(address(0), 6, payees, 1);
        Leg[] memory legs = new Leg[](2);
        legs[0] = _leg(0, 500_000);
        legs[1] = _leg(1, 500_000);
        b.payments[0] = _payment("n", 10 ether, legs);
        _fundDeposit(address(0), 10 ether);
        settlement.settleBatch{gas: 2_000_000}(_pack(b), _sign(b, signerKey));
        assertEq(settlement.balanceOf(address(0), rejecting), 5 ether);
        assertEq(settlement.balanceOf(address(0), burner), 5 ether);
        assertEq(address(settlement).balance, 10 ether);
    }

    // ------------------------------------------------------------ signature errors

    function test_revert_unauthorizedSigner() public {
        _fundDeposit(address(token), 100);
        Draft memory b = _threeWay(1, 100);
        bytes memory sig = _sign(b, 0xB0B);
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.UnauthorizedSigner.selector, vm.addr(0xB0B)));
        settlement.settleBatch(_pack(b), sig);
    }

    function test_revert_removedSigner() public {
        _fundDeposit(address(token), 100);
        Draft memory b = _threeWay(1, 100);
        bytes memory sig = _sign(b, signerKey);
        settlement.setSigner(signer, false);
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.UnauthorizedSigner.selector, signer));
        settlement.settleBatch(_pack(b), sig);
    }

    function test_revert_badSignatureLength() public {
        Draft memory b = _threeWay(1, 100);
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.InvalidSignatureLength.selector, 64));
        settlement.settleBatch(_pack(b), new bytes(64));
    }

    function test_revert_highS() public {
        Draft memory b = _threeWay(1, 100);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(signerKey, settlement.batchDigest(_pack(b)));
        uint256 n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
        bytes32 highS = bytes32(n - uint256(s));
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.InvalidSignatureS.selector, highS));
        settlement.settleBatch(_pack(b), abi.encodePacked(r, highS, v == 27 ? uint8(28) : uint8(27)));
    }

    function test_revert_garbageSignature() public {
        Draft memory b = _threeWay(1, 100);
        vm.expectRevert(ISplitSettlement.InvalidSignature.selector);
        settlement.settleBatch(_pack(b), abi.encodePacked(bytes32(0), bytes32(0), uint8(27)));
    }

    function test_revert_tamperedBatchRecoversOtherSigner() public {
        _fundDeposit(address(token), 1000);
        Draft memory b = _threeWay(1, 100);
        bytes memory sig = _sign(b, signerKey);
        b.payments[0].amount = 1000;
        vm.expectPartialRevert(ISplitSettlement.UnauthorizedSigner.selector);
        settlement.settleBatch(_pack(b), sig);
    }

    // ------------------------------------------------------------ replay and deadline

    function test_revert_replay() public {
        _fundDeposit(address(token), 200);
        Draft memory b = _threeWay(9, 100);
        bytes memory sig = _sign(b, signerKey);
        settlement.settleBatch(_pack(b), sig);
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.NonceAlreadyUsed.selector, signer, 9));
        settlement.settleBatch(_pack(b), sig);
    }

    function test_revert_expired() public {
        Draft memory b = _threeWay(1, 100);
        bytes memory sig = _sign(b, signerKey);
        vm.warp(uint256(b.deadline) + 1);
        vm.expectRevert(
            abi.encodeWithSelector(ISplitSettlement.BatchExpired.selector, b.deadline, b.deadline + 1)
        );
        settlement.settleBatch(_pack(b), sig);
    }

    function test_invalidateNonce_cancelsBatch() public {
        _fundDeposit(address(token), 100);
        Draft memory b = _threeWay(77, 100);
        bytes memory sig = _sign(b, signerKey);
        vm.prank(signer);
        vm.expectEmit(address(settlement));
        emit ISplitSettlement.NonceInvalidated(signer, 77);
        settlement.invalidateNonce(77);
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.NonceAlreadyUsed.selector, signer, 77));
        settlement.settleBatch(_pack(b), sig);
        vm.prank(signer);
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.NonceAlreadyUsed.selector, signer, 77));
        settlement.invalidateNonce(77);
    }

    // ------------------------------------------------------------ batch shape errors

    function test_revert_tokenNotEnabled() public {
        Draft memory b = _threeWay(1, 100);
        b.token = address(0xBEEF);
        _expectRevertSettle(
            b, abi.encodeWithSelector(ISplitSettlement.TokenNotEnabled.selector, address(0xBEEF))
        );
    }

    function test_revert_emptyBatch() public {
        Draft memory b = _emptyBatch(address(token), 1, new address[](0), 0);
        vm.expectRevert(ISplitSettlement.EmptyBatch.selector);
        settlement.batchDigest(_pack(b));
    }

    function test_revert_emptySplit() public {
        Draft memory b = _threeWay(1, 100);
        b.payments[0].legs = new Leg[](0);
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.EmptySplit.selector, 0));
        settlement.batchDigest(_pack(b));
    }

    function test_revert_zeroAmount() public {
        Draft memory b = _threeWay(1, 0);
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.ZeroAmount.selector, 0));
        settlement.batchDigest(_pack(b));
    }

    function test_revert_sharesMismatch() public {
        Draft memory b = _threeWay(1, 100);
        b.payments[0].legs[2].share = 30_001;
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.SharesMismatch.selector, 0, 1_000_001));
        settlement.batchDigest(_pack(b));
    }

    function test_revert_zeroShare() public {
        Draft memory b = _threeWay(1, 100);
        b.payments[0].legs[1].share = 0;
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.ZeroShare.selector, 0, 1));
        settlement.batchDigest(_pack(b));
    }

    function test_revert_unknownPayee() public {
        Draft memory b = _threeWay(1, 100);
        b.payments[0].legs[2].payee = 3;
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.UnknownPayee.selector, 0, 2));
        settlement.batchDigest(_pack(b));
    }

    function test_revert_zeroPayee() public {
        Draft memory b = _threeWay(1, 100);
        b.payees[0] = address(0);
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.ZeroPayee.selector, 0));
        settlement.batchDigest(_pack(b));
    }

    function test_revert_payeesNotSortedOrDuplicated() public {
        Draft memory b = _threeWay(1, 100);
        b.payees[2] = platform;
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.PayeesNotSorted.selector, 2));
        settlement.batchDigest(_pack(b));
        b.payees[2] = address(0x1);
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.PayeesNotSorted.selector, 2));
        settlement.batchDigest(_pack(b));
    }

    function test_revert_invalidFunding() public {
        _fundDeposit(address(token), 100);
        Draft memory b = _threeWay(1, 100);
        b.funding = 2;
        _expectRevertSettle(b, abi.encodeWithSelector(ISplitSettlement.InvalidFunding.selector, 2));
    }

    // ------------------------------------------------------------ limits and funding errors

    function test_revert_paymentTooLarge() public {
        settlement.setTokenConfig(address(token), true, 99, DAILY_CAP);
        Draft memory b = _threeWay(1, 100);
        _expectRevertSettle(b, abi.encodeWithSelector(ISplitSettlement.PaymentTooLarge.selector, 0, 100, 99));
    }

    function test_dailyCap_enforcedAndResetsNextDay() public {
        settlement.setTokenConfig(address(token), true, MAX_PAYMENT, 150);
        _fundDeposit(address(token), 1000);
        Draft memory b1 = _threeWay(1, 100);
        settlement.settleBatch(_pack(b1), _sign(b1, signerKey));
        Draft memory b2 = _threeWay(2, 100);
        _expectRevertSettle(
            b2, abi.encodeWithSelector(ISplitSettlement.DailyCapExceeded.selector, address(token), 100, 50)
        );
        vm.warp(block.timestamp + 1 days);
        b2.deadline = uint64(block.timestamp + 1 hours);
        settlement.settleBatch(_pack(b2), _sign(b2, signerKey));
        ISplitSettlement.TokenConfig memory cfg = settlement.tokenConfig(address(token));
        assertEq(cfg.spentToday, 100);
        assertEq(cfg.day, block.timestamp / 1 days);
    }

    function test_revert_insufficientDeposit() public {
        _fundDeposit(address(token), 99);
        Draft memory b = _threeWay(1, 100);
        _expectRevertSettle(
            b,
            abi.encodeWithSelector(
                ISplitSettlement.InsufficientBalance.selector, address(token), funder, 100, 99
            )
        );
    }

    function test_revert_feeOnTransferPull() public {
        FeeToken fee = new FeeToken();
        settlement.setTokenConfig(address(fee), true, MAX_PAYMENT, DAILY_CAP);
        Draft memory b = _threeWay(1, 1000);
        b.token = address(fee);
        b.funding = 1;
        fee.mint(funder, 1000);
        vm.prank(funder);
        fee.approve(address(settlement), 1000);
        _expectRevertSettle(
            b, abi.encodeWithSelector(ISplitSettlement.FeeOnTransferToken.selector, address(fee), 1000, 990)
        );
    }

    function test_deposit_feeOnTransferCreditsWhatArrived() public {
        FeeToken fee = new FeeToken();
        settlement.setTokenConfig(address(fee), true, MAX_PAYMENT, DAILY_CAP);
        fee.mint(address(this), 1000);
        fee.approve(address(settlement), 1000);
        vm.expectEmit(address(settlement));
        emit ISplitSettlement.Deposited(address(fee), funder, address(this), 990);
        settlement.deposit(address(fee), funder, 1000);
        assertEq(settlement.balanceOf(address(fee), funder), 990);
        assertEq(fee.balanceOf(address(settlement)), 990);
    }

    // ------------------------------------------------------------ deposits and withdrawals

    function test_deposit_errors() public {
        vm.expectRevert(ISplitSettlement.ZeroAddress.selector);
        settlement.deposit(address(token), address(0), 1);
        vm.expectRevert(ISplitSettlement.ZeroValue.selector);
        settlement.deposit(address(token), funder, 0);
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.TokenNotEnabled.selector, address(0xBEEF)));
        settlement.deposit(address(0xBEEF), funder, 1);
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.TokenNotEnabled.selector, address(0)));
        settlement.deposit(address(0), funder, 1);
        vm.expectRevert(ISplitSettlement.ZeroAddress.selector);
        settlement.depositNative{value: 1}(address(0));
        vm.expectRevert(ISplitSettlement.ZeroValue.selector);
        settlement.depositNative(funder);
        settlement.setTokenConfig(address(0), false, 0, 0);
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.TokenNotEnabled.selector, address(0)));
        settlement.depositNative{value: 1}(funder);
    }

    function test_withdraw_erc20AndNative() public {
        _fundDeposit(address(token), 500);
        _fundDeposit(address(0), 3 ether);
        address to = makeAddr("to");
        vm.startPrank(funder);
        vm.expectEmit(address(settlement));
        emit ISplitSettlement.Withdrawn(address(token), funder, to, 200);
        settlement.withdraw(address(token), 200, to);
        settlement.withdraw(address(0), 1 ether, to);
        vm.stopPrank();
        assertEq(token.balanceOf(to), 200);
        assertEq(to.balance, 1 ether);
        assertEq(settlement.balanceOf(address(token), funder), 300);
        assertEq(settlement.balanceOf(address(0), funder), 2 ether);
    }

    function test_withdraw_errors() public {
        _fundDeposit(address(0), 1 ether);
        address rejecting = address(new RejectingReceiver());
        vm.startPrank(funder);
        vm.expectRevert(ISplitSettlement.ZeroAddress.selector);
        settlement.withdraw(address(0), 1, address(0));
        vm.expectRevert(ISplitSettlement.ZeroValue.selector);
        settlement.withdraw(address(0), 0, funder);
        vm.expectRevert(
            abi.encodeWithSelector(
                ISplitSettlement.InsufficientBalance.selector, address(0), funder, 2 ether, 1 ether
            )
        );
        settlement.withdraw(address(0), 2 ether, funder);
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.NativeTransferFailed.selector, rejecting, 1));
        settlement.withdraw(address(0), 1, rejecting);
        vm.stopPrank();
    }

    function test_withdraw_stillWorksForDisabledToken() public {
        _fundDeposit(address(token), 10);
        settlement.setTokenConfig(address(token), false, 0, 0);
        vm.prank(funder);
        settlement.withdraw(address(token), 10, funder);
        assertEq(token.balanceOf(funder), 10);
    }

    function test_setPushPreference() public {
        vm.expectEmit(address(settlement));
        emit ISplitSettlement.PushPreferenceSet(address(token), merchant, true);
        vm.prank(merchant);
        settlement.setPushPreference(address(token), true);
        assertTrue(settlement.pushPreference(address(token), merchant));
        assertFalse(settlement.pushPreference(address(0), merchant));
    }

    // ------------------------------------------------------------ governance surface

    function test_onlyOwnerConfiguration() public {
        address stranger = makeAddr("stranger");
        address v2 = address(Shipped.splitSettlement());
        vm.startPrank(stranger);
        bytes memory err = abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger);
        vm.expectRevert(err);
        settlement.setSigner(stranger, true);
        vm.expectRevert(err);
        settlement.setTokenConfig(address(token), true, 1, 1);
        vm.expectRevert(err);
        settlement.setGuardian(stranger);
        vm.expectRevert(err);
        settlement.unpause();
        vm.expectRevert(err);
        settlement.upgradeToAndCall(v2, "");
        vm.expectRevert(abi.encodeWithSelector(ISplitSettlement.NotGuardian.selector, stranger));
        settlement.pause();
        vm.stopPrank();
    }

    function test_configurationEvents() public {
        vm.expectEmit(address(settlement));
        emit ISplitSettlement.SignerSet(address(0x5), true);
        settlement.setSigner(address(0x5), true);
        assertTrue(settlement.isSigner(address(0x5)));
        vm.expectRevert(ISplitSettlement.ZeroAddress.selector);
        settlement.setSigner(address(0), true);
        vm.expectEmit(address(settlement));
        emit ISplitSettlement.TokenConfigured(address(token), true, 5, 6);
        settlement.setTokenConfig(address(token), true, 5, 6);
        vm.expectEmit(address(settlement));
        emit ISplitSettlement.GuardianSet(address(0x6));
        settlement.setGuardian(address(0x6));
        assertEq(settlement.guardian(), address(0x6));
    }

    function test_pause_byGuardianBlocksSettlementUntilOwnerUnpauses() public {
        _fundDeposit(address(token), 100);
        Draft memory b = _threeWay(1, 100);
        bytes memory sig = _sign(b, signerKey);
        vm.prank(guardian);
        settlement.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        settlement.settleBatch(_pack(b), sig);
        vm.expectRevert(Pausable.EnforcedPause.selector);
        vm.prank(funder);
        settlement.withdraw(address(token), 1, funder);
        vm.expectRevert(Pausable.EnforcedPause.selector);
        settlement.depositNative{value: 1}(funder);
        vm.prank(guardian);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, guardian));
        settlement.unpause();
        settlement.unpause();
        settlement.settleBatch(_pack(b), sig);
        assertEq(settlement.balanceOf(address(token), merchant), 90);
    }

    function test_initialize_onlyOnce() public {
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        settlement.initialize(address(this), guardian);
        SplitSettlement impl = Shipped.splitSettlement();
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        impl.initialize(address(this), guardian);
    }

    function test_views() public view {
        assertEq(settlement.version(), "1");
        assertEq(settlement.owner(), address(this));
        (, string memory name, string memory ver, uint256 chainId, address verifying,,) =
            settlement.eip712Domain();
        assertEq(name, "SplitSettlement");
        assertEq(ver, "1");
        assertEq(chainId, block.chainid);
        assertEq(verifying, address(settlement));
        assertEq(
            settlement.domainSeparator(),
            keccak256(
                abi.encode(
                    keccak256(
                        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
                    ),
                    keccak256("SplitSettlement"),
                    keccak256("1"),
                    block.chainid,
                    address(settlement)
                )
            )
        );
        (uint256[] memory credits, uint256 total) = settlement.previewCredits(_pack(_threeWay(1, 1001)));
        assertEq(total, 1001);
        assertEq(credits[0], 901);
        assertEq(credits[1], 70);
        assertEq(credits[2], 30);
    }

    function _creditsFromLogs() internal returns (bytes memory) {
        bytes32 topic = ISplitSettlement.BatchSettled.selector;
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] == topic) {
                (,,,,,, bytes memory credits) =
                    abi.decode(logs[i].data, (bytes32, address, uint8, uint256, uint256, bytes, bytes));
                return credits;
            }
        }
        revert("no BatchSettled");
    }
}
