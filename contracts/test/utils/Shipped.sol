// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Vm} from "forge-std/Vm.sol";

import {SplitSettlement} from "../../src/SplitSettlement.sol";
import {SettleMultisig} from "../../src/SettleMultisig.sol";

/// @notice Deploys the committed bytecode in `contracts/artifacts`, which is what ships and what the Rust code
///         deploys, instead of the bytecode compiled alongside the tests (with via-IR that can differ).
///         `scripts/test` checks the artifacts against the sources before the tests run.
library Shipped {
    Vm private constant VM = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    function splitSettlement() internal returns (SplitSettlement) {
        return SplitSettlement(payable(VM.deployCode("artifacts/SplitSettlement.json")));
    }

    function multisig(address[] memory owners, uint256 threshold) internal returns (SettleMultisig) {
        return SettleMultisig(
            payable(VM.deployCode("artifacts/SettleMultisig.json", abi.encode(owners, threshold)))
        );
    }
}
