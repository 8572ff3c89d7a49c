// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ISplitSettlement} from "../../src/interfaces/ISplitSettlement.sol";

/// @notice One leg of a split, as tests write it before packing.
struct Leg {
    uint16 payee;
    uint32 share;
}

/// @notice A payment as tests write it before packing.
struct DraftPayment {
    bytes32 paymentId;
    uint128 amount;
    Leg[] legs;
}

/// @notice A batch as tests write it: payments as structs, packed by `Drafts.pack` for the contract.
struct Draft {
    bytes32 batchId;
    uint256 nonce;
    uint64 deadline;
    address token;
    address funder;
    uint8 funding;
    address[] payees;
    DraftPayment[] payments;
}

/// @notice Packs drafts into the contract's `Batch` (see `ISplitSettlement.Batch` for the layout).
library Drafts {
    function packPayments(DraftPayment[] memory payments) internal pure returns (bytes memory out) {
        for (uint256 i; i < payments.length; ++i) {
            DraftPayment memory p = payments[i];
            out = bytes.concat(out, p.paymentId, bytes16(p.amount), bytes1(uint8(p.legs.length)));
            for (uint256 j; j < p.legs.length; ++j) {
                out = bytes.concat(out, bytes2(p.legs[j].payee), bytes4(p.legs[j].share));
            }
        }
    }

    function pack(Draft memory d) internal pure returns (ISplitSettlement.Batch memory b) {
        b.batchId = d.batchId;
        b.nonce = d.nonce;
        b.deadline = d.deadline;
        b.token = d.token;
        b.funder = d.funder;
        b.funding = d.funding;
        b.payees = d.payees;
        b.payments = packPayments(d.payments);
    }
}
