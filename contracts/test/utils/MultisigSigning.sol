// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";

import {ISettleMultisig} from "../../src/interfaces/ISettleMultisig.sol";

/// @notice Signs SettleMultisig operations the way off-chain owners do: one 65-byte (r, s, v)
/// signature per key, ordered by signer address ascending as `execute` requires.
abstract contract MultisigSigning is Test {
    /// @dev Signs `target`/`value`/`data` at the multisig's current nonce with every key in `keys`.
    function _signOperation(
        ISettleMultisig multisig,
        uint256[] memory keys,
        address target,
        uint256 value,
        bytes memory data
    ) internal view returns (bytes[] memory) {
        return _signSorted(multisig.operationDigest(target, value, data, multisig.nonce()), keys);
    }

    /// @dev Signs `digest` with every key and returns the signatures sorted by signer address ascending.
    function _signSorted(bytes32 digest, uint256[] memory keys) internal pure returns (bytes[] memory sigs) {
        uint256 n = keys.length;
        address[] memory signers = new address[](n);
        sigs = new bytes[](n);
        for (uint256 i = 0; i < n; ++i) {
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(keys[i], digest);
            bytes memory sig = abi.encodePacked(r, s, v);
            address signer = vm.addr(keys[i]);
            // Insertion sort: n is a handful of owners.
            uint256 j = i;
            while (j > 0 && signers[j - 1] > signer) {
                signers[j] = signers[j - 1];
                sigs[j] = sigs[j - 1];
                --j;
            }
            signers[j] = signer;
            sigs[j] = sig;
        }
    }
}
