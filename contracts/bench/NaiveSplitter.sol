// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @notice The baseline `settle bench` compares against: pays each payee with one ERC-20 `transfer`
///         from a balance it holds. No signatures, nonces, limits or events of its own: the cheapest
///         obvious way to pay many accounts in one transaction. Never shipped.
contract NaiveSplitter {
    /// @notice The arrays differ in length.
    error LengthMismatch(uint256 payees, uint256 amounts);
    /// @notice The token refused a transfer.
    error TransferFailed(address payee, uint256 amount);

    /// @notice Transfers `amounts[i]` of `token` to `payees[i]` for every i.
    function pay(IERC20 token, address[] calldata payees, uint256[] calldata amounts) external {
        if (payees.length != amounts.length) revert LengthMismatch(payees.length, amounts.length);
        for (uint256 i; i < payees.length; ++i) {
            if (!token.transfer(payees[i], amounts[i])) revert TransferFailed(payees[i], amounts[i]);
        }
    }
}
