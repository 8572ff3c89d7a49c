// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Test, console} from "forge-std/Test.sol";
import {StdInvariant} from "forge-std/StdInvariant.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {SplitSettlement} from "../../src/SplitSettlement.sol";
import {SettlementHandler} from "./SettlementHandler.sol";

/// @notice Conservation and replay invariants of SplitSettlement under random deposits, batches,
///         replays, withdrawals and push preferences, for an ERC-20 and the native coin.
contract SettlementInvariantTest is Test {
    SettlementHandler internal handler;
    SplitSettlement internal settlement;
    address internal token;

    function setUp() public {
        vm.warp(1_750_000_000);
        handler = new SettlementHandler();
        settlement = handler.settlement();
        token = address(handler.token());

        bytes4[] memory selectors = new bytes4[](7);
        selectors[0] = SettlementHandler.deposit.selector;
        selectors[1] = SettlementHandler.depositNative.selector;
        selectors[2] = SettlementHandler.settle.selector;
        selectors[3] = SettlementHandler.replay.selector;
        selectors[4] = SettlementHandler.invalidateNonce.selector;
        selectors[5] = SettlementHandler.withdraw.selector;
        selectors[6] = SettlementHandler.setPushPreference.selector;
        targetContract(address(handler));
        targetSelector(StdInvariant.FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    function _holdings(address tok) internal view returns (uint256) {
        return tok == address(0) ? address(settlement).balance : IERC20(tok).balanceOf(address(settlement));
    }

    function _sumOfBalances(address tok) internal view returns (uint256 sum) {
        address[] memory accounts = handler.allAccounts();
        for (uint256 i; i < accounts.length; ++i) {
            sum += settlement.balanceOf(tok, accounts[i]);
        }
    }

    // ------------------------------------------------------------ invariants

    /// @notice Pull model: every unit the contract holds is owed to some account.
    function invariant_holdingsEqualSumOfBalances() public view {
        assertEq(_holdings(token), _sumOfBalances(token), "erc20: holdings != sum of balances");
        assertEq(_holdings(address(0)), _sumOfBalances(address(0)), "native: holdings != sum of balances");
    }

    /// @notice What batches drew is exactly what payees were credited (internally or pushed), and each
    ///         payee got exactly its independently computed split.
    function invariant_creditedEqualsDrawn() public view {
        assertEq(handler.ghostCredited(token), handler.ghostDrawn(token), "erc20: credited != drawn");
        assertEq(
            handler.ghostCredited(address(0)), handler.ghostDrawn(address(0)), "native: credited != drawn"
        );
        assertEq(handler.creditMismatches(), 0, "a payee's credit differs from the split rule");
    }

    /// @notice Holdings follow the flows: deposits and pulled batch funding in, withdrawals and pushes out.
    function invariant_holdingsMatchFlows() public view {
        for (uint256 t; t < 2; ++t) {
            address tok = t == 0 ? token : address(0);
            assertEq(
                _holdings(tok),
                handler.ghostDeposited(tok) + handler.ghostPulled(tok) - handler.ghostWithdrawn(tok)
                    - handler.ghostPushed(tok),
                t == 0 ? "erc20: holdings != flows" : "native: holdings != flows"
            );
        }
        assertEq(handler.withdrawMismatches(), 0, "a withdrawal delivered a different amount");
    }

    /// @notice Every used (signer, nonce) is marked used, and no replay ever settled.
    function invariant_noncesUsedAndNoReplay() public view {
        uint256 n = handler.usedNonceCount();
        for (uint256 i; i < n; ++i) {
            (address s, uint256 nonce) = handler.usedNonceAt(i);
            assertTrue(settlement.isNonceUsed(s, nonce), "used nonce not marked");
        }
        assertEq(handler.replaySuccesses(), 0, "a replay settled");
        assertEq(handler.replayWrongErrors(), 0, "a replay failed with another error than NonceAlreadyUsed");
    }

    /// @notice At the end of every run, everyone can withdraw everything and the contract is left empty.
    function afterInvariant() public {
        handler.drainAll();
        assertEq(_holdings(token), 0, "erc20 left after draining");
        assertEq(_holdings(address(0)), 0, "native left after draining");
        invariant_holdingsMatchFlows();
        console.log("settled (deposit, pull):", handler.calls("settledDeposit"), handler.calls("settledPull"));
        console.log("pushed out, push failed:", handler.calls("pushedOut"), handler.calls("pushFailed"));
        console.log("replays attempted:", handler.replayAttempts());
        console.log("nonces used:", handler.usedNonceCount());
    }
}
