// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

import {SettleMultisig} from "../src/SettleMultisig.sol";
import {ISettleMultisig} from "../src/interfaces/ISettleMultisig.sol";
import {MultisigSigning} from "./utils/MultisigSigning.sol";
import {Shipped} from "./utils/Shipped.sol";

/// @dev Test-only call target: records who called it and can fail on demand.
contract SettleTarget {
    error TargetRejected(uint256 code, address caller);

    uint256 public stored;
    address public lastCaller;
    uint256 public lastValue;

    function store(uint256 newValue) external payable returns (uint256 previous) {
        previous = stored;
        stored = newValue;
        lastCaller = msg.sender;
        lastValue = msg.value;
    }

    function reject(uint256 code) external view {
        revert TargetRejected(code, msg.sender);
    }

    function rejectSilently() external pure {
        revert();
    }
}

contract SettleMultisigTest is MultisigSigning {
    /// @dev secp256k1 group order.
    uint256 internal constant CURVE_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    uint256 internal constant KEY_A = 0xA11CE;
    uint256 internal constant KEY_B = 0xB0B;
    uint256 internal constant KEY_C = 0xCA201;
    uint256 internal constant KEY_D = 0xD0D0;
    uint256 internal constant OUTSIDER_KEY = 0xBAD;
    uint256 internal constant HOME_CHAIN_ID = 8453;
    uint256 internal constant OTHER_CHAIN_ID = 10;

    SettleMultisig internal multisig;
    SettleTarget internal target;
    address internal ownerA;
    address internal ownerB;
    address internal ownerC;
    address internal outsider;

    function setUp() public {
        ownerA = vm.addr(KEY_A);
        ownerB = vm.addr(KEY_B);
        ownerC = vm.addr(KEY_C);
        outsider = vm.addr(OUTSIDER_KEY);
        multisig = Shipped.multisig(_addresses(ownerA, ownerB, ownerC), 2);
        target = new SettleTarget();
    }

    // ---------------------------------------------------------------- constructor

    function test_Constructor_SetsOwnersThresholdAndEmits() public {
        address expected = vm.computeCreateAddress(address(this), vm.getNonce(address(this)));
        vm.expectEmit(true, true, true, true, expected);
        emit ISettleMultisig.OwnerAdded(ownerA);
        vm.expectEmit(true, true, true, true, expected);
        emit ISettleMultisig.OwnerAdded(ownerB);
        vm.expectEmit(true, true, true, true, expected);
        emit ISettleMultisig.ThresholdChanged(1);
        SettleMultisig fresh = new SettleMultisig(_addresses(ownerA, ownerB), 1);

        assertEq(address(fresh), expected);
        assertEq(fresh.getOwners(), _addresses(ownerA, ownerB));
        assertEq(fresh.threshold(), 1);
        assertEq(fresh.nonce(), 0);
        assertTrue(fresh.isOwner(ownerA));
        assertTrue(fresh.isOwner(ownerB));
        assertFalse(fresh.isOwner(ownerC));
        assertFalse(fresh.isOwner(address(0)));
    }

    function test_Constructor_RevertsOnZeroOwner() public {
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.ZeroAddressOwner.selector));
        new SettleMultisig(_addresses(ownerA, address(0)), 1);
    }

    function test_Constructor_RevertsOnDuplicateOwner() public {
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.DuplicateOwner.selector, ownerA));
        new SettleMultisig(_addresses(ownerA, ownerB, ownerA), 2);
    }

    function test_Constructor_RevertsOnZeroThreshold() public {
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.InvalidThreshold.selector, 0, 3));
        new SettleMultisig(_addresses(ownerA, ownerB, ownerC), 0);
    }

    function test_Constructor_RevertsOnThresholdAboveOwners() public {
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.InvalidThreshold.selector, 4, 3));
        new SettleMultisig(_addresses(ownerA, ownerB, ownerC), 4);
    }

    function test_Constructor_RevertsWithoutOwners() public {
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.InvalidThreshold.selector, 1, 0));
        new SettleMultisig(new address[](0), 1);
    }

    // ---------------------------------------------------------------- digest

    function test_OperationDigest_MatchesIndependentEip712Encoding() public view {
        bytes memory data = abi.encodeCall(SettleTarget.store, (42));
        bytes32 domain = keccak256(
            abi.encode(
                keccak256(
                    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
                ),
                keccak256("SettleMultisig"),
                keccak256("1"),
                block.chainid,
                address(multisig)
            )
        );
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("Operation(address target,uint256 value,bytes data,uint256 nonce)"),
                address(target),
                5,
                keccak256(data),
                9
            )
        );

        assertEq(multisig.domainSeparator(), domain);
        assertEq(
            multisig.OPERATION_TYPEHASH(),
            keccak256("Operation(address target,uint256 value,bytes data,uint256 nonce)")
        );
        assertEq(
            multisig.operationDigest(address(target), 5, data, 9),
            MessageHashUtils.toTypedDataHash(domain, structHash)
        );
    }

    // ---------------------------------------------------------------- execute: success

    function test_Execute_TwoOfThreeCallsTarget() public {
        bytes memory data = abi.encodeCall(SettleTarget.store, (42));
        bytes32 digest = multisig.operationDigest(address(target), 0, data, 0);
        bytes[] memory sigs = _sign(_keys(KEY_A, KEY_C), address(target), 0, data);

        vm.expectEmit(true, true, true, true, address(multisig));
        emit ISettleMultisig.Executed(0, address(target), 0, digest);
        // Anyone may relay a correctly signed operation.
        vm.prank(outsider);
        bytes memory result = multisig.execute(address(target), 0, data, sigs);

        assertEq(target.stored(), 42);
        assertEq(target.lastCaller(), address(multisig));
        assertEq(abi.decode(result, (uint256)), 0, "returns the target's return data");
        assertEq(multisig.nonce(), 1);
    }

    function test_Execute_AcceptsMoreSignaturesThanThreshold() public {
        bytes memory data = abi.encodeCall(SettleTarget.store, (7));
        multisig.execute(
            address(target), 0, data, _sign(_keys(KEY_A, KEY_B, KEY_C), address(target), 0, data)
        );
        assertEq(target.stored(), 7);
        assertEq(multisig.nonce(), 1);
    }

    function test_Execute_SendsValueFromBalanceAndMsgValue() public {
        vm.deal(address(multisig), 1 ether);
        bytes memory data = abi.encodeCall(SettleTarget.store, (1));
        multisig.execute(
            address(target), 0.4 ether, data, _sign(_keys(KEY_A, KEY_B), address(target), 0.4 ether, data)
        );
        assertEq(target.lastValue(), 0.4 ether);
        assertEq(address(target).balance, 0.4 ether);
        assertEq(address(multisig).balance, 0.6 ether);

        // The submitter can fund the call in the same transaction.
        vm.deal(outsider, 2 ether);
        data = abi.encodeCall(SettleTarget.store, (2));
        bytes[] memory sigs = _sign(_keys(KEY_B, KEY_C), address(target), 2.6 ether, data);
        vm.prank(outsider);
        multisig.execute{value: 2 ether}(address(target), 2.6 ether, data, sigs);
        assertEq(address(target).balance, 3 ether);
        assertEq(address(multisig).balance, 0);
    }

    function test_Receive_AcceptsEtherAndEmits() public {
        vm.deal(outsider, 1 ether);
        vm.expectEmit(true, true, true, true, address(multisig));
        emit ISettleMultisig.Received(outsider, 1 ether);
        vm.prank(outsider);
        (bool ok,) = address(multisig).call{value: 1 ether}("");
        assertTrue(ok);
        assertEq(address(multisig).balance, 1 ether);
    }

    // ---------------------------------------------------------------- execute: replay

    function test_Execute_RevertsOnReplayedApproval() public {
        bytes memory data = abi.encodeCall(SettleTarget.store, (42));
        bytes[] memory sigs = _sign(_keys(KEY_A, KEY_B), address(target), 0, data);
        multisig.execute(address(target), 0, data, sigs);

        // The nonce moved, so the old signatures recover to unrelated addresses under the new digest.
        address stray = ECDSA.recover(multisig.operationDigest(address(target), 0, data, 1), sigs[0]);
        assertFalse(multisig.isOwner(stray));
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.SignerNotOwner.selector, 0, stray));
        multisig.execute(address(target), 0, data, sigs);
        assertEq(multisig.nonce(), 1);
    }

    function test_Execute_RevertsOnSignaturesFromAnotherChain() public {
        // Literal chain ids: the optimizer may re-read `block.chainid` rather than keep a copy of it.
        vm.chainId(HOME_CHAIN_ID);
        bytes memory data = abi.encodeCall(SettleTarget.store, (42));
        vm.chainId(OTHER_CHAIN_ID);
        bytes[] memory sigs = _sign(_keys(KEY_A, KEY_B), address(target), 0, data);
        vm.chainId(HOME_CHAIN_ID);

        address stray = ECDSA.recover(multisig.operationDigest(address(target), 0, data, 0), sigs[0]);
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.SignerNotOwner.selector, 0, stray));
        multisig.execute(address(target), 0, data, sigs);

        // Control: the same signatures are good on the chain they were made for.
        vm.chainId(OTHER_CHAIN_ID);
        multisig.execute(address(target), 0, data, sigs);
        assertEq(target.stored(), 42);
    }

    function test_Execute_RevertsOnSignaturesForAnotherInstance() public {
        SettleMultisig twin = new SettleMultisig(_addresses(ownerA, ownerB, ownerC), 2);
        bytes memory data = abi.encodeCall(SettleTarget.store, (42));
        bytes[] memory sigs =
            _signSorted(twin.operationDigest(address(target), 0, data, 0), _keys(KEY_A, KEY_B));

        address stray = ECDSA.recover(multisig.operationDigest(address(target), 0, data, 0), sigs[0]);
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.SignerNotOwner.selector, 0, stray));
        multisig.execute(address(target), 0, data, sigs);

        twin.execute(address(target), 0, data, sigs);
        assertEq(target.lastCaller(), address(twin));
    }

    // ---------------------------------------------------------------- execute: bad signatures

    function test_Execute_RevertsBelowThreshold() public {
        bytes memory data = abi.encodeCall(SettleTarget.store, (42));
        bytes[] memory one = _sign(_keys(KEY_A), address(target), 0, data);
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.ThresholdNotMet.selector, 1, 2));
        multisig.execute(address(target), 0, data, one);

        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.ThresholdNotMet.selector, 0, 2));
        multisig.execute(address(target), 0, data, new bytes[](0));
    }

    function test_Execute_RevertsOnNonOwnerSigner() public {
        bytes memory data = abi.encodeCall(SettleTarget.store, (42));
        bytes[] memory sigs = _sign(_keys(KEY_A, OUTSIDER_KEY), address(target), 0, data);
        uint256 index = outsider < ownerA ? 0 : 1;
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.SignerNotOwner.selector, index, outsider));
        multisig.execute(address(target), 0, data, sigs);
    }

    function test_Execute_RevertsOnUnsortedSignatures() public {
        bytes memory data = abi.encodeCall(SettleTarget.store, (42));
        bytes[] memory sigs = _sign(_keys(KEY_A, KEY_B), address(target), 0, data);
        (address low, address high) = ownerA < ownerB ? (ownerA, ownerB) : (ownerB, ownerA);
        (sigs[0], sigs[1]) = (sigs[1], sigs[0]);
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.SignersNotAscending.selector, 1, low, high));
        multisig.execute(address(target), 0, data, sigs);
    }

    function test_Execute_RevertsOnDuplicateSignature() public {
        bytes memory data = abi.encodeCall(SettleTarget.store, (42));
        bytes[] memory sigs = _sign(_keys(KEY_A, KEY_A), address(target), 0, data);
        vm.expectRevert(
            abi.encodeWithSelector(ISettleMultisig.SignersNotAscending.selector, 1, ownerA, ownerA)
        );
        multisig.execute(address(target), 0, data, sigs);
    }

    function test_Execute_RevertsOnHighSSignature() public {
        bytes memory data = abi.encodeCall(SettleTarget.store, (42));
        bytes32 digest = multisig.operationDigest(address(target), 0, data, 0);
        bytes[] memory sigs = _signSorted(digest, _keys(KEY_A, KEY_B));

        (bytes32 r, bytes32 s, uint8 v) = _split(sigs[1]);
        bytes32 highS = bytes32(CURVE_N - uint256(s));
        uint8 flippedV = v == 27 ? 28 : 27;
        // The malleable twin still recovers the same owner through the raw precompile.
        assertEq(ecrecover(digest, flippedV, r, highS), ecrecover(digest, v, r, s));
        sigs[1] = abi.encodePacked(r, highS, flippedV);

        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.InvalidSignatureS.selector, 1, highS));
        multisig.execute(address(target), 0, data, sigs);
    }

    function test_Execute_RevertsOnWrongLengthSignature() public {
        bytes memory data = abi.encodeCall(SettleTarget.store, (42));
        bytes[] memory sigs = _sign(_keys(KEY_A, KEY_B), address(target), 0, data);
        (bytes32 r, bytes32 s, uint8 v) = _split(sigs[0]);

        sigs[0] = abi.encodePacked(r, s);
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.InvalidSignatureLength.selector, 0, 64));
        multisig.execute(address(target), 0, data, sigs);

        sigs[0] = abi.encodePacked(r, s, v, uint8(0));
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.InvalidSignatureLength.selector, 0, 66));
        multisig.execute(address(target), 0, data, sigs);
    }

    function test_Execute_RevertsOnUnrecoverableSignature() public {
        bytes memory data = abi.encodeCall(SettleTarget.store, (42));
        bytes[] memory sigs = _sign(_keys(KEY_A, KEY_B), address(target), 0, data);
        (bytes32 r, bytes32 s,) = _split(sigs[1]);

        sigs[1] = abi.encodePacked(r, s, uint8(29));
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.InvalidSignature.selector, 1));
        multisig.execute(address(target), 0, data, sigs);

        sigs[1] = abi.encodePacked(bytes32(0), s, uint8(27));
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.InvalidSignature.selector, 1));
        multisig.execute(address(target), 0, data, sigs);
    }

    // ---------------------------------------------------------------- execute: failing call

    function test_Execute_BubblesTargetCustomError() public {
        bytes memory data = abi.encodeCall(SettleTarget.reject, (7));
        bytes[] memory sigs = _sign(_keys(KEY_A, KEY_B), address(target), 0, data);
        vm.expectRevert(abi.encodeWithSelector(SettleTarget.TargetRejected.selector, 7, address(multisig)));
        multisig.execute(address(target), 0, data, sigs);
        assertEq(multisig.nonce(), 0, "a failed call leaves the nonce unspent");
    }

    function test_Execute_BubblesEmptyRevertUnchanged() public {
        bytes memory data = abi.encodeCall(SettleTarget.rejectSilently, ());
        bytes[] memory sigs = _sign(_keys(KEY_A, KEY_B), address(target), 0, data);
        (bool ok, bytes memory returned) =
            address(multisig).call(abi.encodeCall(ISettleMultisig.execute, (address(target), 0, data, sigs)));
        assertFalse(ok);
        assertEq(returned.length, 0);
    }

    // ---------------------------------------------------------------- owner management

    function test_AddOwner_ViaExecute() public {
        address ownerD = vm.addr(KEY_D);
        vm.expectEmit(true, true, true, true, address(multisig));
        emit ISettleMultisig.OwnerAdded(ownerD);
        _execute(
            _keys(KEY_A, KEY_B), address(multisig), 0, abi.encodeCall(ISettleMultisig.addOwner, (ownerD))
        );

        assertTrue(multisig.isOwner(ownerD));
        assertEq(multisig.getOwners(), _addresses(ownerA, ownerB, ownerC, ownerD));
        assertEq(multisig.threshold(), 2);

        // The new owner's signature now counts.
        _execute(_keys(KEY_D, KEY_C), address(target), 0, abi.encodeCall(SettleTarget.store, (4)));
        assertEq(target.stored(), 4);
    }

    function test_RemoveOwner_ViaExecute() public {
        vm.expectEmit(true, true, true, true, address(multisig));
        emit ISettleMultisig.OwnerRemoved(ownerA);
        _execute(
            _keys(KEY_A, KEY_B), address(multisig), 0, abi.encodeCall(ISettleMultisig.removeOwner, (ownerA))
        );

        assertFalse(multisig.isOwner(ownerA));
        assertTrue(multisig.isOwner(ownerB));
        assertTrue(multisig.isOwner(ownerC));
        assertEq(multisig.getOwners().length, 2);

        // The removed owner's signature no longer counts.
        bytes memory data = abi.encodeCall(SettleTarget.store, (4));
        bytes[] memory sigs = _sign(_keys(KEY_A, KEY_B), address(target), 0, data);
        uint256 index = ownerA < ownerB ? 0 : 1;
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.SignerNotOwner.selector, index, ownerA));
        multisig.execute(address(target), 0, data, sigs);

        // The remaining owners can re-add it.
        _execute(
            _keys(KEY_B, KEY_C), address(multisig), 0, abi.encodeCall(ISettleMultisig.addOwner, (ownerA))
        );
        assertTrue(multisig.isOwner(ownerA));
        assertEq(multisig.getOwners().length, 3);
    }

    function test_ChangeThreshold_ViaExecute() public {
        vm.expectEmit(true, true, true, true, address(multisig));
        emit ISettleMultisig.ThresholdChanged(3);
        _execute(
            _keys(KEY_A, KEY_B), address(multisig), 0, abi.encodeCall(ISettleMultisig.changeThreshold, (3))
        );
        assertEq(multisig.threshold(), 3);

        bytes memory data = abi.encodeCall(SettleTarget.store, (4));
        bytes[] memory sigs = _sign(_keys(KEY_A, KEY_B), address(target), 0, data);
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.ThresholdNotMet.selector, 2, 3));
        multisig.execute(address(target), 0, data, sigs);
    }

    function test_OwnerManagement_DirectCallsRevertOnlySelf() public {
        vm.startPrank(ownerA);
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.OnlySelf.selector));
        multisig.addOwner(outsider);
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.OnlySelf.selector));
        multisig.removeOwner(ownerB);
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.OnlySelf.selector));
        multisig.changeThreshold(1);
        vm.stopPrank();
    }

    function test_ChangeThreshold_RevertsOutOfRange() public {
        bytes memory zero = abi.encodeCall(ISettleMultisig.changeThreshold, (0));
        bytes[] memory sigs = _sign(_keys(KEY_A, KEY_B), address(multisig), 0, zero);
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.InvalidThreshold.selector, 0, 3));
        multisig.execute(address(multisig), 0, zero, sigs);

        bytes memory four = abi.encodeCall(ISettleMultisig.changeThreshold, (4));
        sigs = _sign(_keys(KEY_A, KEY_B), address(multisig), 0, four);
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.InvalidThreshold.selector, 4, 3));
        multisig.execute(address(multisig), 0, four, sigs);
        assertEq(multisig.threshold(), 2);
    }

    function test_RemoveOwner_RevertsBelowThreshold() public {
        _execute(
            _keys(KEY_A, KEY_B), address(multisig), 0, abi.encodeCall(ISettleMultisig.changeThreshold, (3))
        );

        bytes memory data = abi.encodeCall(ISettleMultisig.removeOwner, (ownerC));
        bytes[] memory sigs = _sign(_keys(KEY_A, KEY_B, KEY_C), address(multisig), 0, data);
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.InvalidThreshold.selector, 3, 2));
        multisig.execute(address(multisig), 0, data, sigs);
        assertTrue(multisig.isOwner(ownerC));
    }

    function test_AddOwner_RevertsOnZeroOrExistingOwner() public {
        bytes memory data = abi.encodeCall(ISettleMultisig.addOwner, (address(0)));
        bytes[] memory sigs = _sign(_keys(KEY_A, KEY_B), address(multisig), 0, data);
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.ZeroAddressOwner.selector));
        multisig.execute(address(multisig), 0, data, sigs);

        data = abi.encodeCall(ISettleMultisig.addOwner, (ownerB));
        sigs = _sign(_keys(KEY_A, KEY_B), address(multisig), 0, data);
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.DuplicateOwner.selector, ownerB));
        multisig.execute(address(multisig), 0, data, sigs);
    }

    function test_RemoveOwner_RevertsForNonOwner() public {
        bytes memory data = abi.encodeCall(ISettleMultisig.removeOwner, (outsider));
        bytes[] memory sigs = _sign(_keys(KEY_A, KEY_B), address(multisig), 0, data);
        vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.NotAnOwner.selector, outsider));
        multisig.execute(address(multisig), 0, data, sigs);
    }

    // ---------------------------------------------------------------- fuzz

    /// @dev Any subset of a 3-of-5 owner set: execute succeeds exactly when the subset has at least 3 owners.
    function testFuzz_Execute_SucceedsIffThreeOwnersSign(uint256 subsetSeed, uint256 newValue) public {
        uint256[] memory all = new uint256[](5);
        address[] memory owners = new address[](5);
        for (uint256 i = 0; i < 5; ++i) {
            all[i] = 0x5E771E + i;
            owners[i] = vm.addr(all[i]);
        }
        SettleMultisig threeOfFive = new SettleMultisig(owners, 3);

        // Bit i of `mask` picks owner i.
        uint256 mask = _bound(subsetSeed, 0, 31);
        uint256 count = 0;
        for (uint256 i = 0; i < 5; ++i) {
            count += (mask >> i) & 1;
        }
        uint256[] memory subset = new uint256[](count);
        uint256 filled = 0;
        for (uint256 i = 0; i < 5; ++i) {
            if ((mask >> i) & 1 == 1) subset[filled++] = all[i];
        }

        bytes memory data = abi.encodeCall(SettleTarget.store, (newValue));
        bytes[] memory sigs = _signOperation(threeOfFive, subset, address(target), 0, data);
        if (count >= 3) {
            threeOfFive.execute(address(target), 0, data, sigs);
            assertEq(target.stored(), newValue);
            assertEq(target.lastCaller(), address(threeOfFive));
            assertEq(threeOfFive.nonce(), 1);
        } else {
            vm.expectRevert(abi.encodeWithSelector(ISettleMultisig.ThresholdNotMet.selector, count, 3));
            threeOfFive.execute(address(target), 0, data, sigs);
            assertEq(threeOfFive.nonce(), 0);
        }
    }

    // ---------------------------------------------------------------- timelock integration

    function test_Timelock_MultisigSchedulesThenExecutesAfterDelay() public {
        TimelockController timelock = _timelock();
        bytes memory call = abi.encodeCall(SettleTarget.store, (77));
        bytes32 salt = keccak256("settle/timelock");
        bytes32 id = timelock.hashOperation(address(target), 0, call, bytes32(0), salt);

        _execute(
            _keys(KEY_A, KEY_B),
            address(timelock),
            0,
            abi.encodeCall(TimelockController.schedule, (address(target), 0, call, bytes32(0), salt, 1 days))
        );
        assertTrue(timelock.isOperationPending(id));
        assertEq(timelock.getTimestamp(id), block.timestamp + 1 days);
        // Read back rather than keep `block.timestamp + 1 days`, which the optimizer may recompute after a warp.
        uint256 readyAt = timelock.getTimestamp(id);

        bytes memory executeCall =
            abi.encodeCall(TimelockController.execute, (address(target), 0, call, bytes32(0), salt));
        bytes[] memory sigs = _sign(_keys(KEY_B, KEY_C), address(timelock), 0, executeCall);
        bytes memory notReady = abi.encodeWithSelector(
            TimelockController.TimelockUnexpectedOperationState.selector,
            id,
            bytes32(2 ** uint256(TimelockController.OperationState.Ready))
        );
        vm.expectRevert(notReady);
        multisig.execute(address(timelock), 0, executeCall, sigs);

        vm.warp(readyAt - 1);
        vm.expectRevert(notReady);
        multisig.execute(address(timelock), 0, executeCall, sigs);
        assertEq(target.stored(), 0);

        vm.warp(readyAt);
        multisig.execute(address(timelock), 0, executeCall, sigs);
        assertEq(target.stored(), 77);
        assertEq(target.lastCaller(), address(timelock));
        assertTrue(timelock.isOperationDone(id));
    }

    function test_Timelock_OnlyMultisigMayScheduleOrExecute() public {
        TimelockController timelock = _timelock();
        bytes memory call = abi.encodeCall(SettleTarget.store, (77));
        bytes32 proposerRole = timelock.PROPOSER_ROLE();
        bytes32 executorRole = timelock.EXECUTOR_ROLE();

        // Neither an outsider nor a single owner acting alone holds the proposer role.
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, outsider, proposerRole
            )
        );
        vm.prank(outsider);
        timelock.schedule(address(target), 0, call, bytes32(0), bytes32(0), 1 days);

        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, ownerA, proposerRole
            )
        );
        vm.prank(ownerA);
        timelock.schedule(address(target), 0, call, bytes32(0), bytes32(0), 1 days);

        _execute(
            _keys(KEY_A, KEY_C),
            address(timelock),
            0,
            abi.encodeCall(
                TimelockController.schedule, (address(target), 0, call, bytes32(0), bytes32(0), 1 days)
            )
        );
        vm.warp(block.timestamp + 1 days);

        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, outsider, executorRole
            )
        );
        vm.prank(outsider);
        timelock.execute(address(target), 0, call, bytes32(0), bytes32(0));
        assertEq(target.stored(), 0);
    }

    function test_Timelock_MultisigCancels() public {
        TimelockController timelock = _timelock();
        bytes memory call = abi.encodeCall(SettleTarget.store, (77));
        bytes32 id = timelock.hashOperation(address(target), 0, call, bytes32(0), bytes32(0));
        _execute(
            _keys(KEY_A, KEY_B),
            address(timelock),
            0,
            abi.encodeCall(
                TimelockController.schedule, (address(target), 0, call, bytes32(0), bytes32(0), 1 days)
            )
        );
        _execute(_keys(KEY_A, KEY_B), address(timelock), 0, abi.encodeCall(TimelockController.cancel, (id)));
        assertFalse(timelock.isOperation(id));
    }

    // ---------------------------------------------------------------- helpers

    function _timelock() internal returns (TimelockController) {
        address[] memory roles = new address[](1);
        roles[0] = address(multisig);
        return new TimelockController(1 days, roles, roles, address(0));
    }

    function _sign(uint256[] memory keys, address to, uint256 value, bytes memory data)
        internal
        view
        returns (bytes[] memory)
    {
        return _signOperation(multisig, keys, to, value, data);
    }

    function _execute(uint256[] memory keys, address to, uint256 value, bytes memory data)
        internal
        returns (bytes memory)
    {
        return multisig.execute(to, value, data, _sign(keys, to, value, data));
    }

    function _split(bytes memory sig) internal pure returns (bytes32 r, bytes32 s, uint8 v) {
        assertEq(sig.length, 65);
        assembly ("memory-safe") {
            r := mload(add(sig, 0x20))
            s := mload(add(sig, 0x40))
            v := byte(0, mload(add(sig, 0x60)))
        }
    }

    function _keys(uint256 a) internal pure returns (uint256[] memory keys) {
        keys = new uint256[](1);
        keys[0] = a;
    }

    function _keys(uint256 a, uint256 b) internal pure returns (uint256[] memory keys) {
        keys = new uint256[](2);
        (keys[0], keys[1]) = (a, b);
    }

    function _keys(uint256 a, uint256 b, uint256 c) internal pure returns (uint256[] memory keys) {
        keys = new uint256[](3);
        (keys[0], keys[1], keys[2]) = (a, b, c);
    }

    function _addresses(address a, address b) internal pure returns (address[] memory list) {
        list = new address[](2);
        (list[0], list[1]) = (a, b);
    }

    function _addresses(address a, address b, address c) internal pure returns (address[] memory list) {
        list = new address[](3);
        (list[0], list[1], list[2]) = (a, b, c);
    }

    function _addresses(address a, address b, address c, address d)
        internal
        pure
        returns (address[] memory list)
    {
        list = new address[](4);
        (list[0], list[1], list[2], list[3]) = (a, b, c, d);
    }
}
