//! Signatures per second on the SoftHSM2 token: through our signer ([`HsmSigner`]: a session
//! pool, a signature normalised to low `s` with its recovery id `v`), against bare `cryptoki`
//! `C_Sign` calls on the same key over the same digests, and in-process `k256` for context. Each on
//! one and on two threads.

use std::time::Instant;

use alloy::primitives::{B256, keccak256};
use cryptoki::{
    mechanism::Mechanism,
    object::{Attribute, ObjectClass},
    session::UserType,
    types::AuthPin,
};

use super::{BenchArgs, Report};
use crate::{
    demo::BATCH_KEY,
    keys::{Hsm, PIN_ENV, TokenArgs},
};

/// Runs the signing section.
pub(crate) fn run(args: &BenchArgs, report: &mut Report) -> anyhow::Result<()> {
    let module = std::path::PathBuf::from(
        std::env::var("SETTLE_PKCS11_MODULE")
            .unwrap_or_else(|_| crate::keys::DEFAULT_MODULE.to_owned()),
    );
    let hsm = Hsm::open(
        &TokenArgs {
            token: args.token.clone(),
            module,
        },
        std::env::var(PIN_ENV).ok(),
    )?;
    if !hsm.list()?.iter().any(|k| k.label == BATCH_KEY) {
        hsm.create(BATCH_KEY)?;
    }
    let per_thread: usize = if args.quick { 400 } else { 2_000 };
    let digests: Vec<B256> = (0..per_thread.saturating_mul(2))
        .map(|i| keccak256(i.to_be_bytes()))
        .collect();
    let key = k256::ecdsa::SigningKey::from_bytes(&keccak256("settle bench").0.into())?;
    for threads in [1usize, 2] {
        let work = &digests[..per_thread.saturating_mul(threads)];
        let signer = hsm.signer(BATCH_KEY, threads)?;
        let ours = rate(threads, work, |chunk| {
            for digest in chunk {
                signer.sign_prehash(digest)?;
            }
            Ok(())
        })?;
        let bare = rate(threads, work, |chunk| bare_sign(&hsm, chunk))?;
        let local = rate(threads, work, |chunk| {
            for digest in chunk {
                key.sign_prehash_recoverable(digest.as_slice())?;
            }
            Ok(())
        })?;
        let suffix = if threads == 1 {
            String::new()
        } else {
            format!("_{threads}_threads")
        };
        report.set(&format!("hsm_signs_per_s{suffix}"), ours.round());
        report.set(&format!("hsm_bare_signs_per_s{suffix}"), bare.round());
        report.set(
            &format!("hsm_sign_ratio{suffix}"),
            (ours / bare * 1000.0).round() / 1000.0,
        );
        report.set(&format!("k256_signs_per_s{suffix}"), local.round());
    }
    Ok(())
}

/// Signatures per second of `sign` over `work`, split in `threads` equal chunks run at once.
fn rate(
    threads: usize,
    work: &[B256],
    sign: impl Fn(&[B256]) -> anyhow::Result<()> + Sync,
) -> anyhow::Result<f64> {
    let chunk = work
        .len()
        .checked_div(threads.max(1))
        .unwrap_or(work.len())
        .max(1);
    let started = Instant::now();
    std::thread::scope(|scope| {
        let handles: Vec<_> = work
            .chunks(chunk)
            .map(|c| scope.spawn(|| sign(c)))
            .collect();
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a signing thread panicked"))??;
        }
        anyhow::Ok(())
    })?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(if seconds > 0.0 {
        work.len() as f64 / seconds
    } else {
        0.0
    })
}

/// Bare `cryptoki`: its own session and login, the key found by label, one `C_Sign` per digest.
fn bare_sign(hsm: &Hsm, digests: &[B256]) -> anyhow::Result<()> {
    let (pkcs11, token, pin) = hsm.raw();
    let slot = pkcs11
        .get_slots_with_token()?
        .into_iter()
        .find(|slot| {
            pkcs11
                .get_token_info(*slot)
                .is_ok_and(|info| info.label().trim_end() == token)
        })
        .ok_or_else(|| anyhow::anyhow!("no token labelled {token}"))?;
    let session = pkcs11.open_ro_session(slot)?;
    match session.login(UserType::User, Some(&AuthPin::from(pin))) {
        Ok(()) => {}
        Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => return Err(e.into()),
    }
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(BATCH_KEY.as_bytes().to_vec()),
        ])?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no key {BATCH_KEY} on {token}"))?;
    for digest in digests {
        session.sign(&Mechanism::Ecdsa, key, digest.as_slice())?;
    }
    Ok(())
}
