// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {SplitSettlement} from "../../src/SplitSettlement.sol";

/// @notice Test-only upgrade target: the same logic and storage as SplitSettlement, a new version string and
///         one new function, to prove new code runs on the old proxy state.
/// @dev Adds no state variables: everything lives in SplitSettlement's and OpenZeppelin's ERC-7201 namespaces.
///      A real V2 that needs storage must put it in a namespace of its own.
/// @custom:oz-upgrades-from SplitSettlement
contract SplitSettlementV2 is SplitSettlement {
    /// @notice The version of this implementation.
    function version() external pure override returns (string memory) {
        return "2";
    }

    /// @notice A function V1 does not have.
    function newFeature() external pure returns (uint256) {
        return 42;
    }
}
