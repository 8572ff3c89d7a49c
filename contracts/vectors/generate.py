#!/usr/bin/env python3
"""Generates contracts/vectors/{split,batches}.json from hand-chosen inputs.

Split outputs: python integers, straight from the rule in SplitMath.sol's NatSpec
(legs 1.. get floor(amount*share/1e6), leg 0 the remainder). Nothing here imports
or runs the code under test. Digests: `cast keccak` / `cast abi-encode` from the
EIP-712 definitions (typehash, hashStruct, domain separator, 0x1901 prefix).
"""
import json, subprocess, sys

import os

CAST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "node_modules", "@foundry-rs", "cast-linux-amd64", "bin", "cast")
SCALE = 10**6
U128 = 2**128 - 1
U256 = 2**256 - 1


def cast(*args):
    return subprocess.run([CAST, *args], check=True, capture_output=True, text=True).stdout.strip()


def checksum(a):
    return cast("to-check-sum-address", a)


def split(amount, shares):
    assert amount > 0 and shares and all(s > 0 for s in shares) and sum(shares) == SCALE
    parts = [amount * s // SCALE for s in shares]
    parts[0] = amount - sum(parts[1:])
    assert parts[0] >= 0 and sum(parts) == amount
    return parts


SPLIT_CASES = [
    ("amount 1 over four equal legs: every non-first leg rounds to zero", 1, [250000] * 4),
    ("amount 1, single leg", 1, [1000000]),
    ("amount 1, first share 1 still takes everything", 1, [1, 999999]),
    ("amount 3, every non-first leg rounds to zero", 3, [400000, 200000, 200000, 200000]),
    ("999 over 1+3 legs of 999 ppm: non-first legs round to zero", 999, [997003, 999, 999, 999]),
    ("just below 1e6", 999999, [500000, 500000]),
    ("exactly 1e6, thirds", 1000000, [333333, 333333, 333334]),
    ("just above 1e6, thirds", 1000001, [333333, 333333, 333334]),
    ("just below 2e6, shares 1/999999", 1999999, [1, 999999]),
    ("just above 2e6, shares 999999/1", 2000001, [999999, 1]),
    ("multiple of 1e6, ten exact legs", 5000000, [100000] * 10),
    ("shares 1/999999 on an odd amount", 123456789, [1, 999999]),
    ("shares 999999/1 on an odd amount", 123456789, [999999, 1]),
    ("8 legs, uneven shares", 987654321987654321,
     [300000, 200000, 150000, 100000, 100000, 75000, 50000, 25000]),
    ("uint128 max, one leg", U128, [1000000]),
    ("uint128 max, three legs", U128, [600000, 300000, 100000]),
    ("uint128 max, three legs with share 1", U128, [1, 999998, 1]),
    ("uint128 max - 1, 8 equal legs", U128 - 1, [125000] * 8),
    ("255 legs (the most one payment can hold)", 10**18 + 7, [1000000 - 254 * 3921] + [3921] * 254),
]


def split_json():
    cases = []
    for name, amount, shares in SPLIT_CASES:
        cases.append({
            "name": name,
            "amount": str(amount),
            "shares": shares,
            "expected": [str(p) for p in split(amount, shares)],
        })
    return {
        "_comment": (
            "Split vectors: a payment of `amount` split by `shares` (parts per million, summing to 1e6). "
            "Expected: every leg but the first gets floor(amount * share / 1e6), the first gets amount minus "
            "the others. Computed with python3 arbitrary-precision integers from that rule alone (not from "
            "SplitMath.sol or split.rs). Amounts and results are decimal strings (they exceed 2^53)."
        ),
        "cases": cases,
    }


def pack(payments):
    out = ""
    for p in payments:
        assert len(p["paymentId"]) == 66
        out += p["paymentId"][2:]
        out += "%032x" % p["amount"]
        out += "%02x" % len(p["legs"])
        for leg in p["legs"]:
            out += "%04x%08x" % (leg["payee"], leg["share"])
    return "0x" + out


def credits(n, payments):
    c = [0] * n
    for p in payments:
        for leg, part in zip(p["legs"], split(p["amount"], [l["share"] for l in p["legs"]])):
            c[leg["payee"]] += part
    return c, sum(p["amount"] for p in payments)


BATCH_TYPE = ("Batch(bytes32 batchId,uint256 nonce,uint64 deadline,address token,address funder,uint8 funding,"
              "address[] payees,bytes payments)")
DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"


def digest(chain_id, contract, b, packed):
    batch_typehash = cast("keccak", BATCH_TYPE)
    payees_hash = cast("keccak", "0x" + "".join("%064x" % int(a, 16) for a in b["payees"]))
    payments_hash = cast("keccak", packed)
    struct_hash = cast("keccak", cast(
        "abi-encode", "f(bytes32,bytes32,uint256,uint64,address,address,uint8,bytes32,bytes32)",
        batch_typehash, b["batchId"], str(b["nonce"]), str(b["deadline"]), b["token"], b["funder"],
        str(b["funding"]), payees_hash, payments_hash))
    domain_sep = cast("keccak", cast(
        "abi-encode", "f(bytes32,bytes32,bytes32,uint256,address)",
        cast("keccak", DOMAIN_TYPE), cast("keccak", "SplitSettlement"), cast("keccak", "1"),
        str(chain_id), contract))
    return cast("keccak", "0x1901" + domain_sep[2:] + struct_hash[2:])


def leg(payee, share):
    return {"payee": payee, "share": share}


def pid(tag):
    return cast("keccak", "settle-vector-payment-" + tag)


BATCHES = [
    {
        "name": "mainnet, three payees, two payments, deposit funding",
        "chainId": 1,
        "verifyingContract": "0x5e771e5e771e5e771e5e771e5e771e5e771e0001",
        "batch": {
            "batchId": "0x" + "ab" * 32,
            "nonce": 0,
            "deadline": 1750003600,
            "token": "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
            "funder": "0x00000000000000000000000000000000000f0a0d",
            "funding": 0,
            "payees": ["0x1111111111111111111111111111111111111111",
                       "0x2222222222222222222222222222222222222222",
                       "0x3333333333333333333333333333333333333333"],
        },
        "payments": [
            {"paymentId": pid("1a"), "amount": 1001, "legs": [leg(0, 900000), leg(1, 70000), leg(2, 30000)]},
            {"paymentId": pid("1b"), "amount": 25000000, "legs": [leg(1, 1000000)]},
        ],
    },
    {
        "name": "anvil chain, nonce 2^256-1, deadline uint64 max, native coin, pull funding, "
                "a payee twice in one payment, a payee credited nothing",
        "chainId": 31337,
        "verifyingContract": "0x5fbdb2315678afecb367f032d93f642f64180aa3",
        "batch": {
            "batchId": "0x0000000000000000000000000000000000000000000000000000000000000001",
            "nonce": U256,
            "deadline": 2**64 - 1,
            "token": "0x0000000000000000000000000000000000000000",
            "funder": "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266",
            "funding": 1,
            "payees": ["0x0000000000000000000000000000000000000001",
                       "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
                       "0x90f79bf6eb2c4f870365e785982e1f101e93b906",
                       "0xffffffffffffffffffffffffffffffffffffffff"],
        },
        "payments": [
            {"paymentId": pid("2a"), "amount": 7, "legs": [leg(2, 333333), leg(0, 333333), leg(2, 333334)]},
            {"paymentId": pid("2b"), "amount": 1999999, "legs": [leg(0, 1), leg(3, 999999)]},
            {"paymentId": pid("2c"), "amount": 3, "legs": [leg(3, 400000), leg(0, 200000), leg(0, 200000),
                                                          leg(3, 200000)]},
        ],
    },
    {
        "name": "base, eight payees, six payments, up to five legs",
        "chainId": 8453,
        "verifyingContract": "0x00000000000000000000000000000000005e771e",
        "batch": {
            "batchId": cast("keccak", "settle-vector-batch-3"),
            "nonce": 42,
            "deadline": 1767225600,
            "token": "0x833589fcd6edb6e08f4c7c32d4f71b54bda02913",
            "funder": "0xdeadbeefdeadbeefdeadbeefdeadbeefdeadbeef",
            "funding": 0,
            "payees": ["0x0101010101010101010101010101010101010101",
                       "0x1000000000000000000000000000000000000000",
                       "0x2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a",
                       "0x4444444444444444444444444444444444444444",
                       "0x8000000000000000000000000000000000000000",
                       "0x9999999999999999999999999999999999999999",
                       "0xc0ffee254729296a45a3885639ac7e10f9d54979",
                       "0xfffffffffffffffffffffffffffffffffffffffe"],
        },
        "payments": [
            {"paymentId": pid("3a"), "amount": 1000000, "legs": [leg(0, 333333), leg(1, 333333), leg(2, 333334)]},
            {"paymentId": pid("3b"), "amount": 1000001,
             "legs": [leg(7, 200000), leg(6, 200000), leg(5, 200000), leg(4, 200000), leg(3, 200000)]},
            {"paymentId": pid("3c"), "amount": 999999, "legs": [leg(3, 999999), leg(0, 1)]},
            {"paymentId": pid("3d"), "amount": 10**24 + 3, "legs": [leg(5, 975000), leg(6, 25000)]},
            {"paymentId": pid("3e"), "amount": 1, "legs": [leg(4, 500000), leg(5, 500000)]},
            {"paymentId": pid("3f"), "amount": 123456789123456789,
             "legs": [leg(1, 1), leg(2, 2), leg(3, 3), leg(4, 4), leg(0, 999990)]},
        ],
    },
    {
        "name": "sepolia, one payment of uint128 max in three legs, nonce 2^255",
        "chainId": 11155111,
        "verifyingContract": "0xffffffffffffffffffffffffffffffffffffff00",
        "batch": {
            "batchId": "0x" + "ff" * 32,
            "nonce": 2**255,
            "deadline": 1,
            "token": "0x1c7d4b196cb0c7b01d743fbc6116a902379c7238",
            "funder": "0x000000000000000000000000000000000000dead",
            "funding": 1,
            "payees": ["0x00000000000000000000000000000000000000aa",
                       "0x00000000000000000000000000000000000000bb",
                       "0x00000000000000000000000000000000000000cc"],
        },
        "payments": [
            {"paymentId": pid("4a"), "amount": U128, "legs": [leg(2, 600000), leg(1, 300000), leg(0, 100000)]},
        ],
    },
    {
        "name": "optimism, one payee, one payment of 1, nonce 2^256-2, zero batchId",
        "chainId": 10,
        "verifyingContract": "0x000000000000000000000000000000000000c0de",
        "batch": {
            "batchId": "0x" + "00" * 32,
            "nonce": U256 - 1,
            "deadline": 4102444800,
            "token": "0x0b2c639c533813f4aa9d7837caf62653d097ff85",
            "funder": "0x4200000000000000000000000000000000000042",
            "funding": 0,
            "payees": ["0x4200000000000000000000000000000000000006"],
        },
        "payments": [
            {"paymentId": "0x" + "00" * 32, "amount": 1, "legs": [leg(0, 1000000)]},
        ],
    },
]


def batches_json():
    cases = []
    for case in BATCHES:
        b = dict(case["batch"])
        assert b["payees"] == sorted(b["payees"], key=lambda a: int(a, 16))
        assert len(set(int(a, 16) for a in b["payees"])) == len(b["payees"])
        assert all(int(a, 16) != 0 for a in b["payees"])
        for k in ("token", "funder"):
            b[k] = checksum(b[k])
        b["payees"] = [checksum(a) for a in b["payees"]]
        contract = checksum(case["verifyingContract"])
        packed = pack(case["payments"])
        c, total = credits(len(b["payees"]), case["payments"])
        assert total <= U128, "total must fit u128 (the Rust mirror saturates above it)"
        d = digest(case["chainId"], contract, b, packed)
        out_batch = dict(b)
        out_batch["nonce"] = str(b["nonce"])
        out_batch["deadline"] = str(b["deadline"])
        cases.append({
            "name": case["name"],
            "chainId": case["chainId"],
            "verifyingContract": contract,
            "batch": out_batch,
            "payments": [
                {"paymentId": p["paymentId"], "amount": str(p["amount"]), "legs": p["legs"]}
                for p in case["payments"]
            ],
            "expected": {
                "packedPayments": packed,
                "credits": [str(x) for x in c],
                "total": str(total),
                "digest": d,
            },
        })
    return {
        "_comment": [
            "Batch vectors for SplitSettlement.batchDigest / previewCredits and the Rust mirror.",
            "packedPayments: each payment as paymentId (32 bytes) | amount (uint128, 16 bytes big-endian) | "
            "legCount (1 byte) | legCount x (payee uint16 | share uint32), concatenated (python3 string formatting).",
            "credits/total: python3 integers; per payment every leg but the first gets floor(amount*share/1e6), "
            "the first the remainder; credits summed per payee index; total = sum of amounts.",
            "digest: from first principles with cast 1.7.1 (`cast keccak`, `cast abi-encode`): "
            "typeHash = keccak256(\"" + BATCH_TYPE + "\"); "
            "payeesHash = keccak256(payees as 32-byte words, concatenated); paymentsHash = keccak256(packedPayments); "
            "structHash = keccak256(abi.encode(typeHash, batchId, nonce, deadline, token, funder, funding, "
            "payeesHash, paymentsHash)); "
            "domainSeparator = keccak256(abi.encode(keccak256(\"" + DOMAIN_TYPE + "\"), "
            "keccak256(\"SplitSettlement\"), keccak256(\"1\"), chainId, verifyingContract)); "
            "digest = keccak256(0x1901 || domainSeparator || structHash).",
            "paymentIds other than literals are keccak256(\"settle-vector-payment-<tag>\"). "
            "nonce and deadline are decimal strings; every total fits uint128.",
        ],
        "cases": cases,
    }


if __name__ == "__main__":
    out = sys.argv[1]
    for name, data in (("split.json", split_json()), ("batches.json", batches_json())):
        with open(f"{out}/{name}", "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
