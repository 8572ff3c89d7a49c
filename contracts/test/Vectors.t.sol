// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {SplitSettlement} from "../src/SplitSettlement.sol";
import {ISplitSettlement} from "../src/interfaces/ISplitSettlement.sol";
import {DraftPayment, Leg, Drafts} from "./utils/Draft.sol";
import {Shipped} from "./utils/Shipped.sol";

/// @notice The contract against the shared vectors in `vectors/` (the spec the Rust mirror is also held to).
/// @dev Expected values come from the JSON only: with via_ir, reading `block.chainid` after `vm.chainId` may
///      return a stale value, so chain ids are never read back from the EVM here.
contract VectorsTest is Test {
    SplitSettlement internal impl;
    string internal splitJson;
    string internal batchesJson;

    function setUp() public {
        // The implementation itself: previewCredits and batchDigest need no initialised state.
        impl = Shipped.splitSettlement();
        splitJson = vm.readFile(string.concat(vm.projectRoot(), "/vectors/split.json"));
        batchesJson = vm.readFile(string.concat(vm.projectRoot(), "/vectors/batches.json"));
    }

    /// @dev Every split case as a one-payment batch whose leg `j` pays payee `j`.
    function test_vectors_split() public view {
        uint256 count = _count(splitJson);
        assertGe(count, 15, "split.json cases");
        for (uint256 i; i < count; ++i) {
            string memory key = _case(i);
            string memory name = vm.parseJsonString(splitJson, string.concat(key, ".name"));
            uint256 amount = vm.parseJsonUint(splitJson, string.concat(key, ".amount"));
            uint256[] memory shares = vm.parseJsonUintArray(splitJson, string.concat(key, ".shares"));
            uint256[] memory expected = vm.parseJsonUintArray(splitJson, string.concat(key, ".expected"));

            ISplitSettlement.Batch memory b;
            b.payees = new address[](shares.length);
            Leg[] memory legs = new Leg[](shares.length);
            for (uint256 j; j < shares.length; ++j) {
                // casting to 'uint160' is safe because j < 256 (a payment holds at most 255 legs)
                // forge-lint: disable-next-line(unsafe-typecast)
                b.payees[j] = address(uint160(0x1000 + j));
                legs[j] = Leg({payee: SafeCast.toUint16(j), share: SafeCast.toUint32(shares[j])});
            }
            DraftPayment[] memory payments = new DraftPayment[](1);
            payments[0] =
                DraftPayment({paymentId: bytes32(i), amount: SafeCast.toUint128(amount), legs: legs});
            b.payments = Drafts.packPayments(payments);

            (uint256[] memory credits, uint256 total) = impl.previewCredits(b);
            assertEq(credits, expected, name);
            assertEq(total, amount, name);
        }
    }

    /// @dev Every batch case at its own chain id and verifying contract: packing, digest and credits.
    function test_vectors_batches() public {
        uint256 count = _count(batchesJson);
        assertGe(count, 5, "batches.json cases");
        for (uint256 i; i < count; ++i) {
            string memory key = _case(i);
            string memory name = vm.parseJsonString(batchesJson, string.concat(key, ".name"));
            ISplitSettlement.Batch memory b = _batch(key);

            bytes memory packed =
                vm.parseJsonBytes(batchesJson, string.concat(key, ".expected.packedPayments"));
            assertEq(Drafts.packPayments(_payments(key)), packed, string.concat(name, ": packed"));
            b.payments = packed;

            address at = vm.parseJsonAddress(batchesJson, string.concat(key, ".verifyingContract"));
            vm.etch(at, address(impl).code);
            vm.chainId(vm.parseJsonUint(batchesJson, string.concat(key, ".chainId")));
            SplitSettlement settlement = SplitSettlement(at);

            assertEq(
                settlement.batchDigest(b),
                vm.parseJsonBytes32(batchesJson, string.concat(key, ".expected.digest")),
                string.concat(name, ": digest")
            );
            (uint256[] memory credits, uint256 total) = settlement.previewCredits(b);
            assertEq(
                credits,
                vm.parseJsonUintArray(batchesJson, string.concat(key, ".expected.credits")),
                string.concat(name, ": credits")
            );
            assertEq(
                total,
                vm.parseJsonUint(batchesJson, string.concat(key, ".expected.total")),
                string.concat(name, ": total")
            );
        }
    }

    function _batch(string memory key) internal view returns (ISplitSettlement.Batch memory b) {
        string memory batchKey = string.concat(key, ".batch");
        b.batchId = vm.parseJsonBytes32(batchesJson, string.concat(batchKey, ".batchId"));
        b.nonce = vm.parseJsonUint(batchesJson, string.concat(batchKey, ".nonce"));
        b.deadline = SafeCast.toUint64(vm.parseJsonUint(batchesJson, string.concat(batchKey, ".deadline")));
        b.token = vm.parseJsonAddress(batchesJson, string.concat(batchKey, ".token"));
        b.funder = vm.parseJsonAddress(batchesJson, string.concat(batchKey, ".funder"));
        b.funding = SafeCast.toUint8(vm.parseJsonUint(batchesJson, string.concat(batchKey, ".funding")));
        b.payees = vm.parseJsonAddressArray(batchesJson, string.concat(batchKey, ".payees"));
    }

    function _payments(string memory key) internal view returns (DraftPayment[] memory payments) {
        string memory json = batchesJson;
        uint256 count = _length(json, string.concat(key, ".payments"));
        payments = new DraftPayment[](count);
        for (uint256 i; i < count; ++i) {
            string memory p = string.concat(key, ".payments[", vm.toString(i), "]");
            uint256 legCount = _length(json, string.concat(p, ".legs"));
            Leg[] memory legs = new Leg[](legCount);
            for (uint256 j; j < legCount; ++j) {
                string memory l = string.concat(p, ".legs[", vm.toString(j), "]");
                legs[j] = Leg({
                    payee: SafeCast.toUint16(vm.parseJsonUint(json, string.concat(l, ".payee"))),
                    share: SafeCast.toUint32(vm.parseJsonUint(json, string.concat(l, ".share")))
                });
            }
            payments[i] = DraftPayment({
                paymentId: vm.parseJsonBytes32(json, string.concat(p, ".paymentId")),
                amount: SafeCast.toUint128(vm.parseJsonUint(json, string.concat(p, ".amount"))),
                legs: legs
            });
        }
    }

    function _case(uint256 i) internal pure returns (string memory) {
        return string.concat(".cases[", vm.toString(i), "]");
    }

    function _count(string memory json) internal view returns (uint256) {
        return _length(json, ".cases");
    }

    /// @dev Length of the JSON array at `key`.
    function _length(string memory json, string memory key) internal view returns (uint256 n) {
        while (vm.keyExistsJson(json, string.concat(key, "[", vm.toString(n), "]"))) {
            ++n;
        }
    }
}
