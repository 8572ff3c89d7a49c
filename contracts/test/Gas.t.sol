// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Base} from "./Base.t.sol";
import {Draft, DraftPayment, Leg} from "./utils/Draft.sol";
import {ISplitSettlement} from "../src/interfaces/ISplitSettlement.sol";
import {SplitSettlement} from "../src/SplitSettlement.sol";

/// @notice Gas of whole settlement transactions, for `.gas-snapshot` and docs/gas.md.
/// @dev Each test meters only the `settleBatch` call; setup runs with metering paused. The figures in
///      `snapshots/SettlementGas.json` add what the test runner leaves out of a real transaction: the
///      21,000 base cost and the calldata cost (EIP-2028: 4 gas per zero byte, 16 per other byte).
contract SettlementGasTest is Base {
    string internal constant GROUP = "SettlementGas";

    /// @dev Settles a batch paying each of `n` payees once; `warm` payees already hold a balance.
    function _perPayee(string memory name, address token_, uint256 n, bool warm, bool push) internal {
        vm.pauseGasMetering();
        address[] memory payees = _sortedPayees(n, 0xC0FFEE);
        if (warm) {
            Draft memory seed = _batchOnePerPayee(token_, 1, payees, 1);
            _fundDeposit(token_, n);
            settlement.settleBatch(_pack(seed), _sign(seed, signerKey));
        }
        if (push) {
            for (uint256 i; i < n; ++i) {
                vm.prank(payees[i]);
                settlement.setPushPreference(token_, true);
            }
        }
        Draft memory b = _batchOnePerPayee(token_, 2, payees, 1000);
        _fundDeposit(token_, n * 1000);
        _measure(name, b, n);
    }

    function _measure(string memory name, Draft memory b, uint256 credits) internal {
        bytes memory sig = _sign(b, signerKey);
        bytes memory data = abi.encodeCall(SplitSettlement.settleBatch, (_pack(b), sig));
        address target = address(settlement);
        // A real transaction starts with every account and slot cold; the setup above warmed them.
        vm.cool(target);
        vm.cool(b.token);
        for (uint256 i; i < b.payees.length; ++i) {
            vm.cool(b.payees[i]);
        }
        // Calldata is encoded beforehand so that only the contract's own execution is metered.
        vm.resumeGasMetering();
        uint256 before = gasleft();
        (bool ok,) = target.call(data);
        uint256 used = before - gasleft();
        vm.pauseGasMetering();
        assertTrue(ok, "settleBatch reverted");
        uint256 txGas = 21_000 + _calldataGas(data) + used;
        vm.snapshotValue(GROUP, string.concat(name, "_tx"), txGas);
        vm.snapshotValue(GROUP, string.concat(name, "_per_credit"), txGas / credits);
        vm.snapshotValue(GROUP, string.concat(name, "_per_payment"), txGas / b.payments.length);
        vm.resumeGasMetering();
    }

    function _calldataGas(bytes memory data) internal pure returns (uint256 gas) {
        for (uint256 i; i < data.length; ++i) {
            gas += data[i] == 0 ? 4 : 16;
        }
    }

    function test_gas_erc20_pull_cold_1() public {
        _perPayee("erc20_pull_cold_1", address(token), 1, false, false);
    }

    function test_gas_erc20_pull_warm_1() public {
        _perPayee("erc20_pull_warm_1", address(token), 1, true, false);
    }

    function test_gas_erc20_pull_cold_10() public {
        _perPayee("erc20_pull_cold_10", address(token), 10, false, false);
    }

    function test_gas_erc20_pull_warm_10() public {
        _perPayee("erc20_pull_warm_10", address(token), 10, true, false);
    }

    function test_gas_erc20_pull_cold_100() public {
        _perPayee("erc20_pull_cold_100", address(token), 100, false, false);
    }

    function test_gas_erc20_pull_warm_100() public {
        _perPayee("erc20_pull_warm_100", address(token), 100, true, false);
    }

    function test_gas_erc20_pull_cold_500() public {
        _perPayee("erc20_pull_cold_500", address(token), 500, false, false);
    }

    function test_gas_erc20_pull_warm_500() public {
        _perPayee("erc20_pull_warm_500", address(token), 500, true, false);
    }

    function test_gas_erc20_push_cold_100() public {
        _perPayee("erc20_push_cold_100", address(token), 100, false, true);
    }

    function test_gas_erc20_push_warm_100() public {
        _perPayee("erc20_push_warm_100", address(token), 100, true, true);
    }

    function test_gas_native_pull_cold_100() public {
        _perPayee("native_pull_cold_100", address(0), 100, false, false);
    }

    function test_gas_native_pull_warm_100() public {
        _perPayee("native_pull_warm_100", address(0), 100, true, false);
    }

    function test_gas_native_push_warm_100() public {
        _perPayee("native_push_warm_100", address(0), 100, true, true);
    }

    function test_gas_native_pull_warm_500() public {
        _perPayee("native_pull_warm_500", address(0), 500, true, false);
    }

    /// @dev One payment split evenly across `n` payees (the shape of a splitter's distribution).
    function _oneSplit(string memory name, uint256 n, bool warm) internal {
        vm.pauseGasMetering();
        address[] memory payees = _sortedPayees(n, 0x5911);
        if (warm) {
            Draft memory seed = _batchOnePerPayee(address(token), 1, payees, 1);
            _fundDeposit(address(token), n);
            settlement.settleBatch(_pack(seed), _sign(seed, signerKey));
        }
        Draft memory b = _emptyBatch(address(token), 2, payees, 1);
        Leg[] memory legs = new Leg[](n);
        uint256 each = SCALE / n;
        for (uint256 i; i < n; ++i) {
            legs[i] = _leg(i, i == 0 ? SCALE - each * (n - 1) : each);
        }
        b.payments[0] = _payment("split", 1e24, legs);
        _fundDeposit(address(token), 1e24);
        _measure(name, b, n);
    }

    function test_gas_split_warm_100() public {
        _oneSplit("split_warm_100", 100, true);
    }

    function test_gas_split_cold_100() public {
        _oneSplit("split_cold_100", 100, false);
    }

    function test_gas_split_warm_10() public {
        _oneSplit("split_warm_10", 10, true);
    }

    /// @dev 500 payments, each split 3 ways: merchant (one of 50), platform fee payee, referrer (one of 20).
    function test_gas_realistic_500_payments() public {
        vm.pauseGasMetering();
        address[] memory payees = _sortedPayees(71, 0xFEE);
        // payees[0..49] merchants, payees[50] platform, payees[51..70] referrers.
        Draft memory seed = _batchOnePerPayee(address(token), 1, payees, 1);
        _fundDeposit(address(token), payees.length);
        settlement.settleBatch(_pack(seed), _sign(seed, signerKey));

        Draft memory b = _emptyBatch(address(token), 2, payees, 500);
        uint256 total;
        for (uint256 i; i < 500; ++i) {
            uint256 amount = 1_000_000 + uint256(keccak256(abi.encode(i))) % 1e9;
            total += amount;
            b.payments[i] = _payment(
                keccak256(abi.encode("payment", i)),
                amount,
                _legs3(i % 50, 900_000, 50, 70_000, 51 + (i % 20), 30_000)
            );
        }
        _fundDeposit(address(token), total);
        _measure("realistic_500x3", b, 1500);
    }
}
