// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {OwnableUpgradeable} from "@openzeppelin/contracts-upgradeable/access/OwnableUpgradeable.sol";
import {UUPSUpgradeable} from "@openzeppelin/contracts-upgradeable/proxy/utils/UUPSUpgradeable.sol";
import {PausableUpgradeable} from "@openzeppelin/contracts-upgradeable/utils/PausableUpgradeable.sol";
import {ERC1967Proxy} from "@openzeppelin/contracts/proxy/ERC1967/ERC1967Proxy.sol";
import {IERC1967} from "@openzeppelin/contracts/interfaces/IERC1967.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {SplitSettlement} from "../src/SplitSettlement.sol";
import {ISplitSettlement} from "../src/interfaces/ISplitSettlement.sol";
import {SettleMultisig} from "../src/SettleMultisig.sol";
import {ISettleMultisig} from "../src/interfaces/ISettleMultisig.sol";
import {Base} from "./Base.t.sol";
import {Draft, DraftPayment, Leg} from "./utils/Draft.sol";
import {MultisigSigning} from "./utils/MultisigSigning.sol";
import {TestToken} from "./utils/Tokens.sol";
import {SplitSettlementV2} from "./mocks/SplitSettlementV2.sol";
import {Shipped} from "./utils/Shipped.sol";

/// @notice Upgrades SplitSettlement through the production governance path:
///         2-of-3 SettleMultisig -> TimelockController (2 days) -> proxy owner.
contract UpgradeTest is Base, MultisigSigning {
    /// @dev bytes32(uint256(keccak256("eip1967.proxy.implementation")) - 1)
    bytes32 internal constant IMPLEMENTATION_SLOT =
        0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc;
    uint256 internal constant MIN_DELAY = 2 days;
    uint256 internal constant START = 1_750_000_000;
    /// @dev When the governance-configured setup is done (the configuration itself waits out the delay).
    uint256 internal constant CONFIGURED_AT = START + MIN_DELAY;
    /// @dev The setup batch outlives every warp below, so replaying it fails on its nonce, not its deadline.
    uint64 internal constant LONG_DEADLINE = uint64(START + 30 days);

    uint256 internal constant KEY_A = 0xA1;
    uint256 internal constant KEY_B = 0xB2;
    uint256 internal constant KEY_C = 0xC3;
    uint256 internal constant FIRST_NONCE = 7;
    uint256 internal constant AMOUNT = 1_000e18;
    uint256 internal constant FUNDING = 5_000e18;

    SettleMultisig internal multisig;
    TimelockController internal timelock;
    SplitSettlement internal implV1;
    SplitSettlementV2 internal implV2;
    address internal ownerA;
    address internal ownerB;
    address internal ownerC;
    address internal stranger = makeAddr("stranger");
    address[] internal payees;

    // What the proxy held before any upgrade. The first batch is rebuilt on demand by `_splitBatch`.
    bytes internal firstSignature;
    uint256[3] internal payeeBalancesBefore;
    uint256 internal funderBalanceBefore;
    uint256 internal heldBefore;
    bytes internal tokenConfigBefore;
    bytes internal nativeConfigBefore;
    bytes32 internal domainBefore;

    function setUp() public override {
        vm.warp(START);
        signer = vm.addr(signerKey);
        ownerA = vm.addr(KEY_A);
        ownerB = vm.addr(KEY_B);
        ownerC = vm.addr(KEY_C);

        address[] memory owners = new address[](3);
        owners[0] = ownerA;
        owners[1] = ownerB;
        owners[2] = ownerC;
        multisig = Shipped.multisig(owners, 2);

        address[] memory roles = new address[](1);
        roles[0] = address(multisig);
        timelock = new TimelockController(MIN_DELAY, roles, roles, address(0));

        implV1 = Shipped.splitSettlement();
        settlement = SplitSettlement(
            address(
                new ERC1967Proxy(
                    address(implV1), abi.encodeCall(SplitSettlement.initialize, (address(timelock), guardian))
                )
            )
        );
        implV2 = new SplitSettlementV2();
        token = new TestToken("USD");

        // Configuration goes through governance too: one timelocked batch of three owner calls.
        address[] memory targets = new address[](3);
        targets[0] = address(settlement);
        targets[1] = address(settlement);
        targets[2] = address(settlement);
        bytes[] memory calls = new bytes[](3);
        calls[0] = abi.encodeCall(SplitSettlement.setSigner, (signer, true));
        calls[1] =
            abi.encodeCall(SplitSettlement.setTokenConfig, (address(token), true, MAX_PAYMENT, DAILY_CAP));
        calls[2] = abi.encodeCall(SplitSettlement.setTokenConfig, (address(0), true, MAX_PAYMENT, DAILY_CAP));
        _governBatch(targets, calls, keccak256("settle/configure"));

        // A 3-way split funded from a deposit.
        payees = _sortedPayees(3, 0x5e771e);
        _fundDeposit(address(token), FUNDING);
        Draft memory first = _splitBatch(FIRST_NONCE, LONG_DEADLINE);
        firstSignature = _sign(first, signerKey);
        settlement.settleBatch(_pack(first), firstSignature);

        for (uint256 i; i < 3; ++i) {
            payeeBalancesBefore[i] = settlement.balanceOf(address(token), payees[i]);
        }
        funderBalanceBefore = settlement.balanceOf(address(token), funder);
        heldBefore = token.balanceOf(address(settlement));
        tokenConfigBefore = abi.encode(settlement.tokenConfig(address(token)));
        nativeConfigBefore = abi.encode(settlement.tokenConfig(address(0)));
        domainBefore = settlement.domainSeparator();

        // Sanity of the recorded state, so "unchanged" below means something.
        assertEq(payeeBalancesBefore[0], 500e18);
        assertEq(payeeBalancesBefore[1], 300e18);
        assertEq(payeeBalancesBefore[2], 200e18);
        assertEq(funderBalanceBefore, FUNDING - AMOUNT);
        assertEq(heldBefore, FUNDING);
        assertTrue(settlement.isNonceUsed(signer, FIRST_NONCE));
        assertTrue(settlement.isSigner(signer));
        assertEq(settlement.tokenConfig(address(token)).spentToday, AMOUNT);
        assertEq(settlement.owner(), address(timelock));
        assertEq(settlement.guardian(), guardian);
        assertEq(_implementation(), address(implV1));
        assertEq(settlement.version(), "1");
        assertEq(multisig.nonce(), 2); // scheduleBatch + executeBatch
        assertEq(block.timestamp, CONFIGURED_AT);
    }

    // ---------------------------------------------------------------- wiring

    function test_governanceWiring() public view {
        assertTrue(timelock.hasRole(timelock.PROPOSER_ROLE(), address(multisig)));
        assertTrue(timelock.hasRole(timelock.EXECUTOR_ROLE(), address(multisig)));
        // OZ v5 grants the canceller role to every proposer.
        assertTrue(timelock.hasRole(timelock.CANCELLER_ROLE(), address(multisig)));
        // Only the timelock administers itself: no deployer or EOA admin.
        assertTrue(timelock.hasRole(timelock.DEFAULT_ADMIN_ROLE(), address(timelock)));
        assertFalse(timelock.hasRole(timelock.DEFAULT_ADMIN_ROLE(), address(this)));
        assertFalse(timelock.hasRole(timelock.DEFAULT_ADMIN_ROLE(), address(multisig)));
        // The executor role is not open to anyone.
        assertFalse(timelock.hasRole(timelock.EXECUTOR_ROLE(), address(0)));
        assertEq(timelock.getMinDelay(), MIN_DELAY);
        assertEq(multisig.threshold(), 2);
        assertEq(multisig.getOwners().length, 3);
    }

    // ---------------------------------------------------------------- upgrade

    function test_upgrade_keepsStateAndBalances() public {
        bytes memory upgradeCall = abi.encodeCall(UUPSUpgradeable.upgradeToAndCall, (address(implV2), ""));
        bytes32 salt = keccak256("settle/upgrade-v2");
        _schedule(address(settlement), upgradeCall, salt);
        vm.warp(timelock.getTimestamp(_id(address(settlement), upgradeCall, salt)));

        (bytes memory executeCall, bytes[] memory sigs) =
            _executeApproval(address(settlement), upgradeCall, salt);
        vm.expectEmit(true, true, true, true, address(settlement));
        emit IERC1967.Upgraded(address(implV2));
        multisig.execute(address(timelock), 0, executeCall, sigs);

        // New code on the old proxy.
        assertEq(_implementation(), address(implV2));
        assertEq(SplitSettlementV2(address(settlement)).version(), "2");
        assertEq(SplitSettlementV2(address(settlement)).newFeature(), 42);

        // Old state untouched.
        for (uint256 i; i < 3; ++i) {
            assertEq(settlement.balanceOf(address(token), payees[i]), payeeBalancesBefore[i]);
        }
        assertEq(settlement.balanceOf(address(token), funder), funderBalanceBefore);
        assertEq(token.balanceOf(address(settlement)), heldBefore);
        assertTrue(settlement.isNonceUsed(signer, FIRST_NONCE));
        assertFalse(settlement.isNonceUsed(signer, FIRST_NONCE + 1));
        assertTrue(settlement.isSigner(signer));
        assertFalse(settlement.isSigner(stranger));
        assertEq(abi.encode(settlement.tokenConfig(address(token))), tokenConfigBefore);
        assertEq(abi.encode(settlement.tokenConfig(address(0))), nativeConfigBefore);
        assertEq(settlement.guardian(), guardian);
        assertEq(settlement.owner(), address(timelock));
        assertFalse(settlement.paused());
        assertEq(settlement.domainSeparator(), domainBefore);

        // The old signed batch is still spent.
        vm.expectRevert(
            abi.encodeWithSelector(ISplitSettlement.NonceAlreadyUsed.selector, signer, FIRST_NONCE)
        );
        settlement.settleBatch(_pack(_splitBatch(FIRST_NONCE, LONG_DEADLINE)), firstSignature);

        // A new batch settles on V2, and payees withdraw.
        Draft memory second = _splitBatch(FIRST_NONCE + 1, LONG_DEADLINE);
        settlement.settleBatch(_pack(second), _sign(second, signerKey));
        assertEq(settlement.balanceOf(address(token), funder), funderBalanceBefore - AMOUNT);
        for (uint256 i; i < 3; ++i) {
            uint256 credited = settlement.balanceOf(address(token), payees[i]);
            assertEq(credited, 2 * payeeBalancesBefore[i]);
            vm.prank(payees[i]);
            settlement.withdraw(address(token), credited, payees[i]);
            assertEq(settlement.balanceOf(address(token), payees[i]), 0);
            assertEq(token.balanceOf(payees[i]), credited);
        }
        // Conservation: what the proxy holds is the funder's remaining balance.
        assertEq(token.balanceOf(address(settlement)), funderBalanceBefore - AMOUNT);
    }

    function test_upgrade_unauthorised() public {
        bytes memory upgradeCall = abi.encodeCall(UUPSUpgradeable.upgradeToAndCall, (address(implV2), ""));

        // Neither a multisig owner, a stranger, nor the multisig itself owns the proxy: only the timelock does.
        address[3] memory callers = [ownerA, stranger, address(multisig)];
        for (uint256 i; i < callers.length; ++i) {
            vm.expectRevert(
                abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, callers[i])
            );
            vm.prank(callers[i]);
            settlement.upgradeToAndCall(address(implV2), "");
        }
        // The multisig calling the proxy directly, skipping the timelock, fails the same way.
        bytes[] memory direct = _sign(_keys(KEY_A, KEY_B), address(settlement), upgradeCall);
        vm.expectRevert(
            abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, address(multisig))
        );
        multisig.execute(address(settlement), 0, upgradeCall, direct);

        // Only the multisig proposes.
        bytes32 proposerRole = timelock.PROPOSER_ROLE();
        address[2] memory eoas = [ownerA, stranger];
        for (uint256 i; i < eoas.length; ++i) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IAccessControl.AccessControlUnauthorizedAccount.selector, eoas[i], proposerRole
                )
            );
            vm.prank(eoas[i]);
            timelock.schedule(address(settlement), 0, upgradeCall, bytes32(0), bytes32(0), MIN_DELAY);
        }

        // One owner's signature is below the threshold.
        bytes memory scheduleCall = abi.encodeCall(
            TimelockController.schedule,
            (address(settlement), 0, upgradeCall, bytes32(0), bytes32(0), MIN_DELAY)
        );
        bytes[] memory one = _sign(_keys(KEY_A), address(timelock), scheduleCall);
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.ThresholdNotMet.selector, 1, 2));
        multisig.execute(address(timelock), 0, scheduleCall, one);

        // Once properly scheduled and ready, only the multisig executes.
        uint256 nonceBefore = multisig.nonce();
        _schedule(address(settlement), upgradeCall, bytes32(0));
        vm.warp(timelock.getTimestamp(_id(address(settlement), upgradeCall, bytes32(0))));
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, stranger, timelock.EXECUTOR_ROLE()
            )
        );
        vm.prank(stranger);
        timelock.execute(address(settlement), 0, upgradeCall, bytes32(0), bytes32(0));

        // Nothing changed.
        assertEq(_implementation(), address(implV1));
        assertEq(settlement.version(), "1");
        assertEq(multisig.nonce(), nonceBefore + 1); // only the one valid schedule
    }

    function test_upgrade_tooEarly() public {
        bytes memory upgradeCall = abi.encodeCall(UUPSUpgradeable.upgradeToAndCall, (address(implV2), ""));
        bytes32 salt = keccak256("settle/too-early");
        bytes32 id = _id(address(settlement), upgradeCall, salt);
        _schedule(address(settlement), upgradeCall, salt);
        assertTrue(timelock.isOperationPending(id));
        assertFalse(timelock.isOperationReady(id));
        uint256 readyAt = timelock.getTimestamp(id);
        assertEq(readyAt, CONFIGURED_AT + MIN_DELAY);

        (bytes memory executeCall, bytes[] memory sigs) =
            _executeApproval(address(settlement), upgradeCall, salt);
        bytes memory notReady = abi.encodeWithSelector(
            TimelockController.TimelockUnexpectedOperationState.selector,
            id,
            bytes32(1 << uint8(TimelockController.OperationState.Ready))
        );
        assertEq(uint256(bytes32(1 << uint8(TimelockController.OperationState.Ready))), 4);

        // Right after scheduling.
        vm.expectRevert(notReady);
        multisig.execute(address(timelock), 0, executeCall, sigs);

        // One second before the delay ends (the reverted attempt left the multisig nonce, so `sigs` still hold).
        vm.warp(readyAt - 1);
        vm.expectRevert(notReady);
        multisig.execute(address(timelock), 0, executeCall, sigs);
        assertEq(_implementation(), address(implV1));

        // At the exact end of the delay it goes through.
        vm.warp(readyAt);
        multisig.execute(address(timelock), 0, executeCall, sigs);
        assertEq(_implementation(), address(implV2));
        assertTrue(timelock.isOperationDone(id));
    }

    function test_upgrade_replayedApproval() public {
        bytes memory upgradeCall = abi.encodeCall(UUPSUpgradeable.upgradeToAndCall, (address(implV2), ""));
        bytes32 salt = keccak256("settle/replay");
        bytes memory scheduleCall = abi.encodeCall(
            TimelockController.schedule, (address(settlement), 0, upgradeCall, bytes32(0), salt, MIN_DELAY)
        );
        bytes[] memory sigs = _sign(_keys(KEY_A, KEY_B), address(timelock), scheduleCall);
        uint256 nonceBefore = multisig.nonce();
        multisig.execute(address(timelock), 0, scheduleCall, sigs);
        assertEq(multisig.nonce(), nonceBefore + 1);

        // The same signatures now verify against the next nonce's digest and recover to a stranger.
        bytes32 newDigest = multisig.operationDigest(address(timelock), 0, scheduleCall, multisig.nonce());
        address recovered = ECDSA.recover(newDigest, sigs[0]);
        assertFalse(multisig.isOwner(recovered));
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.SignerNotOwner.selector, 0, recovered));
        multisig.execute(address(timelock), 0, scheduleCall, sigs);
        assertEq(multisig.nonce(), nonceBefore + 1);

        // The execute step's approval cannot be replayed either, once used.
        bytes32 id = _id(address(settlement), upgradeCall, salt);
        vm.warp(timelock.getTimestamp(id));
        bytes memory executeCall = abi.encodeCall(
            TimelockController.execute, (address(settlement), 0, upgradeCall, bytes32(0), salt)
        );
        bytes[] memory execSigs = _sign(_keys(KEY_B, KEY_C), address(timelock), executeCall);
        multisig.execute(address(timelock), 0, executeCall, execSigs);
        assertTrue(timelock.isOperationDone(id));
        newDigest = multisig.operationDigest(address(timelock), 0, executeCall, multisig.nonce());
        recovered = ECDSA.recover(newDigest, execSigs[0]);
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.SignerNotOwner.selector, 0, recovered));
        multisig.execute(address(timelock), 0, executeCall, execSigs);
    }

    // ---------------------------------------------------------------- pause

    function test_guardianPausesAtOnce_unpauseNeedsTimelock() public {
        vm.expectEmit(true, true, true, true, address(settlement));
        emit PausableUpgradeable.Paused(guardian);
        vm.prank(guardian);
        settlement.pause();
        assertTrue(settlement.paused());

        Draft memory next = _splitBatch(FIRST_NONCE + 1, LONG_DEADLINE);
        bytes memory nextSignature = _sign(next, signerKey);
        vm.expectRevert(PausableUpgradeable.EnforcedPause.selector);
        settlement.settleBatch(_pack(next), nextSignature);
        vm.expectRevert(PausableUpgradeable.EnforcedPause.selector);
        vm.prank(payees[0]);
        settlement.withdraw(address(token), 1, payees[0]);

        // Neither the guardian nor a stranger may unpause.
        address[2] memory callers = [guardian, stranger];
        for (uint256 i; i < callers.length; ++i) {
            vm.expectRevert(
                abi.encodeWithSelector(OwnableUpgradeable.OwnableUnauthorizedAccount.selector, callers[i])
            );
            vm.prank(callers[i]);
            settlement.unpause();
        }

        // Unpausing is timelocked.
        bytes memory unpauseCall = abi.encodeCall(SplitSettlement.unpause, ());
        bytes32 salt = keccak256("settle/unpause");
        bytes32 id = _id(address(settlement), unpauseCall, salt);
        _schedule(address(settlement), unpauseCall, salt);
        uint256 readyAt = timelock.getTimestamp(id);
        assertEq(readyAt, CONFIGURED_AT + MIN_DELAY);

        (bytes memory executeCall, bytes[] memory sigs) =
            _executeApproval(address(settlement), unpauseCall, salt);
        vm.warp(readyAt - 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                TimelockController.TimelockUnexpectedOperationState.selector,
                id,
                bytes32(1 << uint8(TimelockController.OperationState.Ready))
            )
        );
        multisig.execute(address(timelock), 0, executeCall, sigs);
        assertTrue(settlement.paused());

        vm.warp(readyAt);
        vm.expectEmit(true, true, true, true, address(settlement));
        emit PausableUpgradeable.Unpaused(address(timelock));
        multisig.execute(address(timelock), 0, executeCall, sigs);
        assertFalse(settlement.paused());

        // Settlement and withdrawals work again.
        settlement.settleBatch(_pack(next), nextSignature);
        assertTrue(settlement.isNonceUsed(signer, FIRST_NONCE + 1));
        assertEq(settlement.balanceOf(address(token), payees[0]), 2 * payeeBalancesBefore[0]);
        vm.prank(payees[0]);
        settlement.withdraw(address(token), 1, payees[0]);
        assertEq(token.balanceOf(payees[0]), 1);
    }

    // ---------------------------------------------------------------- cancel

    function test_cancel() public {
        bytes memory upgradeCall = abi.encodeCall(UUPSUpgradeable.upgradeToAndCall, (address(implV2), ""));
        bytes32 salt = keccak256("settle/cancel");
        bytes32 id = _id(address(settlement), upgradeCall, salt);
        _schedule(address(settlement), upgradeCall, salt);
        uint256 readyAt = timelock.getTimestamp(id);
        assertTrue(timelock.isOperationPending(id));

        // A stranger cannot cancel.
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, stranger, timelock.CANCELLER_ROLE()
            )
        );
        vm.prank(stranger);
        timelock.cancel(id);

        bytes memory cancelCall = abi.encodeCall(TimelockController.cancel, (id));
        bytes[] memory cancelSigs = _sign(_keys(KEY_A, KEY_C), address(timelock), cancelCall);
        vm.expectEmit(true, true, true, true, address(timelock));
        emit TimelockController.Cancelled(id);
        multisig.execute(address(timelock), 0, cancelCall, cancelSigs);
        assertFalse(timelock.isOperation(id));
        assertEq(timelock.getTimestamp(id), 0);

        vm.warp(readyAt);
        (bytes memory executeCall, bytes[] memory sigs) =
            _executeApproval(address(settlement), upgradeCall, salt);
        vm.expectRevert(
            abi.encodeWithSelector(
                TimelockController.TimelockUnexpectedOperationState.selector,
                id,
                bytes32(1 << uint8(TimelockController.OperationState.Ready))
            )
        );
        multisig.execute(address(timelock), 0, executeCall, sigs);
        assertEq(_implementation(), address(implV1));
        assertEq(settlement.version(), "1");
    }

    // ---------------------------------------------------------------- helpers

    /// @dev One payment of AMOUNT split 50/30/20 between the three payees, drawn from the funder's deposit.
    function _splitBatch(uint256 nonce, uint64 deadline) internal view returns (Draft memory b) {
        b = _emptyBatch(address(token), nonce, payees, 1);
        b.deadline = deadline;
        b.payments[0] =
            _payment(keccak256(abi.encode("pay", nonce)), AMOUNT, _legs3(0, 500_000, 1, 300_000, 2, 200_000));
    }

    function _implementation() internal view returns (address) {
        return address(uint160(uint256(vm.load(address(settlement), IMPLEMENTATION_SLOT))));
    }

    function _id(address target, bytes memory data, bytes32 salt) internal view returns (bytes32) {
        return timelock.hashOperation(target, 0, data, bytes32(0), salt);
    }

    /// @dev Owners A and B approve scheduling `target.call(data)` with the minimum delay.
    function _schedule(address target, bytes memory data, bytes32 salt) internal {
        _approve(
            _keys(KEY_A, KEY_B),
            address(timelock),
            abi.encodeCall(TimelockController.schedule, (target, 0, data, bytes32(0), salt, MIN_DELAY))
        );
    }

    /// @dev Owners B and C's approval to execute the scheduled `target.call(data)`, at the multisig's current
    ///      nonce. Built before `vm.expectRevert`/`vm.expectEmit`, whose "next call" would otherwise be one of
    ///      the signing helper's view calls.
    function _executeApproval(address target, bytes memory data, bytes32 salt)
        internal
        view
        returns (bytes memory executeCall, bytes[] memory sigs)
    {
        executeCall = abi.encodeCall(TimelockController.execute, (target, 0, data, bytes32(0), salt));
        sigs = _sign(_keys(KEY_B, KEY_C), address(timelock), executeCall);
    }

    /// @dev multisig -> timelock.scheduleBatch, wait out the delay, multisig -> timelock.executeBatch.
    function _governBatch(address[] memory targets, bytes[] memory calls, bytes32 salt) internal {
        uint256[] memory values = new uint256[](targets.length);
        _approve(
            _keys(KEY_A, KEY_B),
            address(timelock),
            abi.encodeCall(
                TimelockController.scheduleBatch, (targets, values, calls, bytes32(0), salt, MIN_DELAY)
            )
        );
        bytes32 id = timelock.hashOperationBatch(targets, values, calls, bytes32(0), salt);
        vm.warp(timelock.getTimestamp(id));
        _approve(
            _keys(KEY_A, KEY_C),
            address(timelock),
            abi.encodeCall(TimelockController.executeBatch, (targets, values, calls, bytes32(0), salt))
        );
        assertTrue(timelock.isOperationDone(id));
    }

    function _approve(uint256[] memory keys, address target, bytes memory data) internal {
        multisig.execute(target, 0, data, _sign(keys, target, data));
    }

    function _sign(uint256[] memory keys, address target, bytes memory data)
        internal
        view
        returns (bytes[] memory)
    {
        return _signOperation(multisig, keys, target, 0, data);
    }

    function _keys(uint256 a) internal pure returns (uint256[] memory keys) {
        keys = new uint256[](1);
        keys[0] = a;
    }

    function _keys(uint256 a, uint256 b) internal pure returns (uint256[] memory keys) {
        keys = new uint256[](2);
        keys[0] = a;
        keys[1] = b;
    }
}
