// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Test, console} from "forge-std/Test.sol";
import {SettleMultisig} from "../src/SettleMultisig.sol";

contract ChainReader { function id() external view returns (uint256) { return block.chainid; } }

contract DebugTest is Test {
    function test_dbg() public {
        address[] memory o = new address[](1); o[0] = address(1);
        SettleMultisig m = new SettleMultisig(o, 1);
        ChainReader c = new ChainReader();
        uint256 home = block.chainid;
        console.log(home, c.id());
        console.logBytes32(m.domainSeparator());
        vm.chainId(home + 1);
        console.log(block.chainid, c.id());
        console.logBytes32(m.domainSeparator());
        vm.chainId(home);
        console.log(block.chainid, c.id());
        console.logBytes32(m.domainSeparator());
    }
}
