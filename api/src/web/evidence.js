// evidence.js: checks a settled payment's evidence against a chain node, in the browser, so that
// an auditor does not have to trust the server that rendered the page.
//
// The page carries the server's claims (the JSON of GET /v1/payments/{id}/evidence) in
// #claims[data-evidence]. This script asks the node named in #rpc for the transaction, its receipt
// and the contract's state, and checks every claim against them. Keccak-256, the EIP-712 digest
// and secp256k1 public-key recovery are computed here, with BigInt; nothing else is loaded.
'use strict';

(() => {
  // ------------------------------------------------------------------ bytes

  const hexToBytes = (hex) => {
    const h = hex.startsWith('0x') ? hex.slice(2) : hex;
    if (h.length % 2 !== 0 || /[^0-9a-fA-F]/.test(h)) throw new Error(`not hex: ${hex}`);
    const out = new Uint8Array(h.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(h.substr(2 * i, 2), 16);
    return out;
  };
  const toHex = (bytes) => '0x' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  };
  const toBig = (bytes) => (bytes.length === 0 ? 0n : BigInt(toHex(bytes)));
  const word = (n) => hexToBytes(BigInt(n).toString(16).padStart(64, '0'));
  const addressWord = (address) => concat(new Uint8Array(12), hexToBytes(address));
  const utf8 = (text) => new TextEncoder().encode(text);
  const same = (a, b) => String(a).toLowerCase() === String(b).toLowerCase();

  // ------------------------------------------------------------------ Keccak-256
  // Keccak-f[1600] on 25 lanes of 64 bits, rate 136 bytes, Keccak's own padding (0x01 ... 0x80),
  // which is what Ethereum calls keccak256 (not FIPS-202 SHA3-256, which pads with 0x06).

  const MASK = (1n << 64n) - 1n;
  const rotl = (v, n) => (n === 0 ? v : ((v << BigInt(n)) | (v >> BigInt(64 - n))) & MASK);

  // Round constants from the spec's LFSR (x^8 + x^6 + x^5 + x^4 + 1).
  const lfsrBit = (t) => {
    let r = 1;
    for (let i = 0; i < t % 255; i++) {
      r <<= 1;
      if (r & 0x100) r ^= 0x171;
    }
    return r & 1;
  };
  const ROUND = Array.from({ length: 24 }, (_, i) => {
    let rc = 0n;
    for (let j = 0; j < 7; j++) if (lfsrBit(j + 7 * i)) rc |= 1n << BigInt((1 << j) - 1);
    return rc;
  });
  // Rotation offsets, walking (x, y) -> (y, 2x + 3y) from (1, 0).
  const OFFSET = new Array(25).fill(0);
  for (let t = 0, x = 1, y = 0; t < 24; t++) {
    OFFSET[x + 5 * y] = (((t + 1) * (t + 2)) / 2) % 64;
    [x, y] = [y, (2 * x + 3 * y) % 5];
  }

  const permute = (a) => {
    const c = new Array(5);
    const b = new Array(25);
    for (let round = 0; round < 24; round++) {
      for (let x = 0; x < 5; x++) c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
      for (let x = 0; x < 5; x++) {
        const d = c[(x + 4) % 5] ^ rotl(c[(x + 1) % 5], 1);
        for (let y = 0; y < 25; y += 5) a[x + y] ^= d;
      }
      for (let x = 0; x < 5; x++) {
        for (let y = 0; y < 5; y++) b[y + 5 * ((2 * x + 3 * y) % 5)] = rotl(a[x + 5 * y], OFFSET[x + 5 * y]);
      }
      for (let y = 0; y < 25; y += 5) {
        for (let x = 0; x < 5; x++) a[x + y] = b[x + y] ^ (~b[((x + 1) % 5) + y] & MASK & b[((x + 2) % 5) + y]);
      }
      a[0] ^= ROUND[round];
    }
  };

  const keccak256 = (data) => {
    const rate = 136;
    const blocks = Math.floor(data.length / rate) + 1;
    const padded = new Uint8Array(blocks * rate);
    padded.set(data);
    padded[data.length] ^= 0x01;
    padded[padded.length - 1] ^= 0x80;
    const state = new Array(25).fill(0n);
    for (let off = 0; off < padded.length; off += rate) {
      for (let lane = 0; lane < rate / 8; lane++) {
        let v = 0n;
        for (let k = 7; k >= 0; k--) v = (v << 8n) | BigInt(padded[off + lane * 8 + k]);
        state[lane] ^= v;
      }
      permute(state);
    }
    const out = new Uint8Array(32);
    for (let i = 0; i < 32; i++) out[i] = Number((state[i >> 3] >> BigInt(8 * (i & 7))) & 0xffn);
    return out;
  };
  const keccakText = (text) => keccak256(utf8(text));

  // ------------------------------------------------------------------ secp256k1

  const P = 2n ** 256n - 2n ** 32n - 977n;
  const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
  const G = {
    x: 0x79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798n,
    y: 0x483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8n,
  };
  const mod = (a, m) => ((a % m) + m) % m;
  const inverse = (a, m) => {
    let [r0, r1] = [mod(a, m), m];
    let [s0, s1] = [1n, 0n];
    while (r1 !== 0n) {
      const q = r0 / r1;
      [r0, r1] = [r1, r0 - q * r1];
      [s0, s1] = [s1, s0 - q * s1];
    }
    if (r0 !== 1n) throw new Error('no inverse');
    return mod(s0, m);
  };
  const power = (base, exp, m) => {
    let result = 1n;
    let b = mod(base, m);
    for (let e = exp; e > 0n; e >>= 1n) {
      if (e & 1n) result = (result * b) % m;
      b = (b * b) % m;
    }
    return result;
  };
  // Affine points; null is the point at infinity.
  const add = (p, q) => {
    if (p === null) return q;
    if (q === null) return p;
    if (p.x === q.x && mod(p.y + q.y, P) === 0n) return null;
    const slope = p.x === q.x
      ? mod(3n * p.x * p.x * inverse(2n * p.y, P), P)
      : mod((q.y - p.y) * inverse(q.x - p.x, P), P);
    const x = mod(slope * slope - p.x - q.x, P);
    return { x, y: mod(slope * (p.x - x) - p.y, P) };
  };
  const multiply = (k, point) => {
    let result = null;
    let addend = point;
    for (let e = mod(k, N); e > 0n; e >>= 1n) {
      if (e & 1n) result = add(result, addend);
      addend = add(addend, addend);
    }
    return result;
  };

  // The address whose key made the 65-byte (r, s, v) `signature` over `digest` (32 bytes).
  const recoverAddress = (digest, signature) => {
    if (signature.length !== 65) throw new Error(`the signature is ${signature.length} bytes, not 65`);
    const r = toBig(signature.slice(0, 32));
    const s = toBig(signature.slice(32, 64));
    const v = signature[64];
    const parity = v >= 27 ? v - 27 : v;
    if (parity > 1) throw new Error(`v = ${v} is not 27 or 28`);
    if (r <= 0n || r >= N || s <= 0n || s >= N) throw new Error('r or s is out of range');
    if (s > N / 2n) throw new Error('s is in the upper half (a malleable signature; the contract refuses it)');
    const alpha = mod(r * r * r + 7n, P);
    const beta = power(alpha, (P + 1n) / 4n, P);
    if ((beta * beta) % P !== alpha) throw new Error('r is not the x of a curve point');
    const R = { x: r, y: (beta & 1n) === BigInt(parity) ? beta : P - beta };
    const rInv = inverse(r, N);
    const z = toBig(digest);
    const Q = add(multiply(mod(s * rInv, N), R), multiply(mod(-z * rInv, N), G));
    if (Q === null) throw new Error('the recovered key is the point at infinity');
    const hash = keccak256(concat(word(Q.x), word(Q.y)));
    return toHex(hash.slice(12));
  };

  // ------------------------------------------------------------------ ABI reading

  // A reader over ABI-encoded `bytes` starting at `base`.
  const abi = (bytes, base = 0) => {
    const wordAt = (i) => {
      const at = base + 32 * i;
      if (at + 32 > bytes.length) throw new Error('the data ends early');
      return bytes.slice(at, at + 32);
    };
    return {
      word: wordAt,
      uint: (i) => toBig(wordAt(i)),
      address: (i) => toHex(wordAt(i).slice(12)),
      // Dynamic `bytes` whose offset (from `base`) is at word `i`.
      bytes: (i) => {
        const start = base + Number(toBig(wordAt(i)));
        const length = Number(toBig(bytes.slice(start, start + 32)));
        if (start + 32 + length > bytes.length) throw new Error('bytes run past the data');
        return bytes.slice(start + 32, start + 32 + length);
      },
      // A dynamic value (tuple, array) whose offset is at word `i`: a reader from there.
      at: (i) => abi(bytes, base + Number(toBig(wordAt(i)))),
    };
  };

  // Packed payments: bytes32 id | uint128 amount | uint8 legCount | legCount x (uint16 payee | uint32 share).
  const decodePayments = (bytes) => {
    const payments = [];
    for (let at = 0; at < bytes.length;) {
      if (at + 49 > bytes.length) throw new Error(`payment ${payments.length} is cut short`);
      const legCount = bytes[at + 48];
      const payment = { id: toHex(bytes.slice(at, at + 32)), amount: toBig(bytes.slice(at + 32, at + 48)), legs: [] };
      at += 49;
      for (let l = 0; l < legCount; l++, at += 6) {
        if (at + 6 > bytes.length) throw new Error(`payment ${payments.length} is cut short`);
        payment.legs.push({ payee: (bytes[at] << 8) | bytes[at + 1], share: toBig(bytes.slice(at + 2, at + 6)) });
      }
      payments.push(payment);
    }
    return payments;
  };
  // Packed credits: address payee | uint128 amount, per payee of the batch.
  const decodeCredits = (bytes) => {
    if (bytes.length % 36 !== 0) throw new Error('credits are not whole 36-byte entries');
    const credits = [];
    for (let at = 0; at < bytes.length; at += 36) {
      credits.push({ payee: toHex(bytes.slice(at, at + 20)), amount: toBig(bytes.slice(at + 20, at + 36)) });
    }
    return credits;
  };
  // The contract's split: every leg but the first rounds down, the first takes the remainder.
  const SCALE = 1000000n;
  const split = (amount, shares) => {
    const parts = shares.map((share) => (amount * share) / SCALE);
    parts[0] = amount - parts.slice(1).reduce((a, b) => a + b, 0n);
    return parts;
  };

  // ------------------------------------------------------------------ the contract's shapes

  const BATCH_SETTLED = keccakText('BatchSettled(bytes32,address,address,bytes32,address,uint8,uint256,uint256,bytes,bytes)');
  const SETTLE_BATCH = keccakText('settleBatch((bytes32,uint256,uint64,address,address,uint8,address[],bytes),bytes)').slice(0, 4);
  const IS_SIGNER = keccakText('isSigner(address)').slice(0, 4);
  const BATCH_TYPEHASH = keccakText('Batch(bytes32 batchId,uint256 nonce,uint64 deadline,address token,address funder,uint8 funding,address[] payees,bytes payments)');
  const DOMAIN_TYPEHASH = keccakText('EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)');

  const eip712Digest = (batch, chainId, contract) => {
    const domain = keccak256(concat(DOMAIN_TYPEHASH, keccakText('SplitSettlement'), keccakText('1'), word(chainId), addressWord(contract)));
    const payees = keccak256(concat(...batch.payees.map(addressWord)));
    const struct = keccak256(concat(
      BATCH_TYPEHASH, batch.batchId, word(batch.nonce), word(batch.deadline), addressWord(batch.token),
      addressWord(batch.funder), word(batch.funding), payees, keccak256(batch.payments),
    ));
    return keccak256(concat(new Uint8Array([0x19, 0x01]), domain, struct));
  };

  // settleBatch(Batch batch, bytes signature) calldata.
  const decodeSettleBatch = (input) => {
    if (!same(toHex(input.slice(0, 4)), toHex(SETTLE_BATCH))) throw new Error('the transaction does not call settleBatch');
    const args = abi(input.slice(4));
    const b = args.at(0);
    const payees = b.at(6);
    const count = Number(payees.uint(0));
    const list = [];
    for (let i = 1; i <= count; i++) list.push(payees.address(i));
    return {
      batch: {
        batchId: b.word(0), nonce: b.uint(1), deadline: b.uint(2), token: b.address(3),
        funder: b.address(4), funding: b.uint(5), payees: list, payments: b.bytes(7),
      },
      signature: args.bytes(1),
    };
  };

  // ------------------------------------------------------------------ the node

  const rpc = async (url, method, params) => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    });
    if (!response.ok) throw new Error(`${method}: the node answered HTTP ${response.status}`);
    const body = await response.json();
    if (body.error) throw new Error(`${method}: ${body.error.message}`);
    return body.result;
  };

  // ------------------------------------------------------------------ the checks

  const fail = (why) => { throw new Error(why); };
  const expect = (what, claimed, actual) => {
    if (!same(claimed, actual)) fail(`${what}: the server claims ${claimed}, the chain says ${actual}`);
  };

  // Checks one settlement `s`; calls `report(id, label, passed, why)` for each check.
  const checkSettlement = async (url, paymentId, s, report) => {
    const facts = {};
    const run = async (id, label, body) => {
      try {
        const why = await body();
        report(id, label, true, why);
      } catch (e) {
        report(id, label, false, e.message);
      }
    };
    await run('chain', `The node serves chain ${s.chain_id}`, async () => {
      facts.chainId = BigInt(await rpc(url, 'eth_chainId', []));
      expect('chain id', BigInt(s.chain_id), facts.chainId);
      return `eth_chainId = ${facts.chainId}`;
    });
    await run('receipt', 'The transaction is mined and succeeded', async () => {
      const receipt = await rpc(url, 'eth_getTransactionReceipt', [s.tx_hash]);
      if (!receipt) fail(`the node has no receipt for ${s.tx_hash}`);
      if (receipt.status !== '0x1') fail(`the transaction reverted (status ${receipt.status})`);
      expect('block number', BigInt(s.block_number), BigInt(receipt.blockNumber));
      expect('block hash', s.block_hash, receipt.blockHash);
      expect('called contract', s.contract, receipt.to);
      facts.receipt = receipt;
      return `status 1 in block ${BigInt(receipt.blockNumber)} ${receipt.blockHash}`;
    });
    await run('log', 'The BatchSettled log is in the receipt at the claimed index with the claimed fields', async () => {
      if (!facts.receipt) fail('no receipt to look in');
      const log = facts.receipt.logs.find((l) => BigInt(l.logIndex) === BigInt(s.log_index));
      if (!log) fail(`the receipt has no log at index ${s.log_index}`);
      const data = abi(hexToBytes(log.data));
      // Read first, so that the payment check can look inside the log whatever differs here.
      facts.payments = data.bytes(5);
      facts.credits = data.bytes(6);
      expect('log emitter', s.contract, log.address);
      expect('event', toHex(BATCH_SETTLED), log.topics[0]);
      expect('batch id', s.batch_id, log.topics[1]);
      expect('signer', toHex(addressWord(s.signer)), log.topics[2]);
      expect('token', toHex(addressWord(s.token)), log.topics[3]);
      expect('digest', s.digest, toHex(data.word(0)));
      expect('funder', s.funder, data.address(1));
      expect('funding', BigInt(s.funding), data.uint(2));
      expect('nonce', BigInt(s.nonce), data.uint(3));
      expect('total', BigInt(s.total), data.uint(4));
      expect('packed payments', s.payments, toHex(facts.payments));
      expect('packed credits', s.credits, toHex(facts.credits));
      return `log ${s.log_index}: batch ${s.batch_id}, total ${s.total}`;
    });
    await run('payment', 'The payment is in the signed batch with the claimed amount and split', async () => {
      if (!facts.payments) fail('no log to read the payment from');
      const payment = decodePayments(facts.payments)[s.position];
      if (!payment) fail(`the batch has no payment at position ${s.position}`);
      expect('payment id', paymentId, payment.id);
      expect('amount', BigInt(s.amount), payment.amount);
      const credits = decodeCredits(facts.credits);
      const parts = split(payment.amount, payment.legs.map((l) => l.share));
      if (payment.legs.length !== s.split.length) fail(`the server claims ${s.split.length} legs, the chain has ${payment.legs.length}`);
      payment.legs.forEach((leg, i) => {
        const payee = credits[leg.payee];
        if (!payee) fail(`leg ${i} names payee ${leg.payee}, which the batch does not have`);
        expect(`leg ${i} payee`, s.split[i].payee, payee.payee);
        expect(`leg ${i} share`, BigInt(s.split[i].share), leg.share);
        expect(`leg ${i} credit`, BigInt(s.split[i].credited), parts[i]);
      });
      return `amount ${payment.amount} split ${parts.join(' + ')}`;
    });
    await run('digest', 'The EIP-712 digest rebuilt from the signed calldata equals the claimed digest', async () => {
      const tx = await rpc(url, 'eth_getTransactionByHash', [s.tx_hash]);
      if (!tx) fail(`the node has no transaction ${s.tx_hash}`);
      expect('transaction target', s.contract, tx.to);
      const call = decodeSettleBatch(hexToBytes(tx.input));
      expect('calldata batch id', s.batch_id, toHex(call.batch.batchId));
      expect('calldata nonce', BigInt(s.nonce), call.batch.nonce);
      expect('calldata token', s.token, call.batch.token);
      expect('calldata funder', s.funder, call.batch.funder);
      expect('calldata payments', s.payments, toHex(call.batch.payments));
      const digest = toHex(eip712Digest(call.batch, facts.chainId ?? BigInt(s.chain_id), s.contract));
      expect('digest', s.digest, digest);
      facts.digest = hexToBytes(digest);
      facts.signature = call.signature;
      return `keccak256(0x1901 ‖ domain ‖ struct) = ${digest}`;
    });
    await run('signer', 'The signer recovered from the digest and the signature is the claimed signer', async () => {
      if (!facts.signature) fail('no signature: the calldata could not be read');
      const recovered = recoverAddress(facts.digest, facts.signature);
      expect('signer', s.signer, recovered);
      return `secp256k1 recovery gives ${recovered}`;
    });
    await run('authorised', 'The contract authorised that signer at the settlement block', async () => {
      const data = toHex(concat(IS_SIGNER, addressWord(s.signer)));
      const answer = await rpc(url, 'eth_call', [{ to: s.contract, data }, '0x' + BigInt(s.block_number).toString(16)]);
      if (BigInt(answer) !== 1n) fail(`isSigner(${s.signer}) is false at block ${s.block_number}`);
      return `isSigner(${s.signer}) = true at block ${s.block_number}`;
    });
  };

  // ------------------------------------------------------------------ the page

  const selfTest = () => {
    const empty = toHex(keccak256(new Uint8Array(0)));
    if (empty !== '0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470') {
      throw new Error(`keccak256 self-test failed: ${empty}`);
    }
  };

  const render = (list, id, label, passed, why) => {
    const item = document.createElement('li');
    item.dataset.check = id;
    item.dataset.result = passed ? 'passed' : 'failed';
    const verdict = document.createElement('span');
    verdict.className = `verdict ${passed ? 'passed' : 'failed'}`;
    verdict.textContent = passed ? 'PASSED' : 'FAILED';
    const text = document.createElement('span');
    text.textContent = ` ${label}`;
    const detail = document.createElement('span');
    detail.className = 'why';
    detail.textContent = why;
    item.append(verdict, text, detail);
    list.append(item);
  };

  const checkAll = async () => {
    const summary = document.getElementById('summary');
    const url = document.getElementById('rpc').value.trim();
    summary.textContent = `Checking against ${url}…`;
    summary.dataset.state = 'running';
    let passed = 0;
    let failed = 0;
    const evidence = JSON.parse(document.getElementById('claims').dataset.evidence);
    for (const [index, settlement] of evidence.settlements.entries()) {
      const list = document.getElementById(`checks-${index}`);
      list.replaceChildren();
      const report = (id, label, ok, why) => {
        if (ok) passed++; else failed++;
        render(list, id, label, ok, why);
      };
      try {
        selfTest();
        await checkSettlement(url, evidence.payment_id, settlement, report);
      } catch (e) {
        report('script', 'The checker itself ran', false, e.message);
      }
    }
    summary.dataset.state = 'done';
    summary.dataset.runs = String(Number(summary.dataset.runs ?? 0) + 1);
    summary.dataset.passed = String(passed);
    summary.dataset.failed = String(failed);
    summary.textContent = failed === 0
      ? `All ${passed} checks passed against ${url}.`
      : `${failed} of ${passed + failed} checks FAILED against ${url}: do not rely on this evidence.`;
  };

  if (typeof document === 'undefined') {
    // Outside a browser (the unit check in tests/browser): expose the primitives, run nothing.
    globalThis.settleEvidence = { keccak256, recoverAddress, eip712Digest, decodePayments, split, toHex, hexToBytes };
    return;
  }
  document.getElementById('recheck').addEventListener('submit', (event) => {
    event.preventDefault();
    checkAll();
  });
  checkAll();
})();
