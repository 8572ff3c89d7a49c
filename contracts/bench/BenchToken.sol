// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice A mintable ERC-20 that `settle bench` deploys to measure ERC-20 settlement. Never shipped.
contract BenchToken is ERC20 {
    constructor() ERC20("Bench", "BENCH") {}

    /// @notice Mints `amount` to `to`; anyone may call it (bench only).
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
