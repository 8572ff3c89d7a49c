// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title SplitMath
/// @notice The one rounding rule of settle, shared by the contract, the Rust mirror and the test vectors.
/// @dev A payment of `amount` split into legs with shares summing to `SCALE`:
///      every leg except the first gets `floor(amount * share / SCALE)`; the first leg gets what is left,
///      so the legs always add up to `amount` exactly. The first leg is the merchant by convention.
library SplitMath {
    /// @notice Shares are parts per million.
    uint256 internal constant SCALE = 1_000_000;

    /// @notice The rounded-down portion of `amount` for `share`.
    /// @dev Safe unchecked: callers bound `amount` below 2**128 and `share` below 2**32.
    function portion(uint256 amount, uint256 share) internal pure returns (uint256) {
        unchecked {
            return amount * share / SCALE;
        }
    }
}
