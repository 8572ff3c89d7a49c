//! The merchant page: balances per token and payouts with filters, pages and a CSV download.
//!
//! A merchant key sees its own address only (another address is a 404 page, as in the API);
//! auditor and admin keys name the address in the form.

use std::fmt::Write as _;

use askama::Template;
use axum::{
    extract::{Query, State},
    http::header,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use settle_indexer::query;

use super::{Nav, UiError, UiUser, bad_parameter, decimal, encode_query, given, render};
use crate::{
    auth::{Principal, Role},
    listing::{self, RangeParams},
    merchants,
    state::AppState,
};

/// Most rows of one CSV download.
const MAX_CSV_ROWS: usize = 100_000;

/// The page's form: which merchant, which payouts.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct MerchantQuery {
    address: Option<String>,
    token: Option<String>,
    from_block: Option<String>,
    to_block: Option<String>,
    from_time: Option<String>,
    to_time: Option<String>,
    cursor: Option<String>,
}

impl MerchantQuery {
    /// A field's value as the form shows it again.
    fn value(&self, field: &str) -> &str {
        let value = match field {
            "address" => &self.address,
            "token" => &self.token,
            "from_block" => &self.from_block,
            "to_block" => &self.to_block,
            "from_time" => &self.from_time,
            "to_time" => &self.to_time,
            _ => &None,
        };
        value.as_deref().unwrap_or_default()
    }

    fn block(field: &str, text: Option<&str>) -> Result<Option<u64>, UiError> {
        given(text)
            .map(|t| {
                t.parse::<u64>()
                    .map_err(|_| bad_parameter(format!("`{field}` = {t:?} is not a block number")))
            })
            .transpose()
    }

    /// The filter part of the query string (for the next page and the CSV link).
    fn filters(&self, address: &str) -> String {
        let mut out = format!("address={}", encode_query(address));
        for (name, value) in [
            ("token", &self.token),
            ("from_block", &self.from_block),
            ("to_block", &self.to_block),
            ("from_time", &self.from_time),
            ("to_time", &self.to_time),
        ] {
            if let Some(v) = given(value.as_deref()) {
                let _ = write!(out, "&{name}={}", encode_query(v));
            }
        }
        out
    }
}

/// The account the page is about: a merchant's own, or the one an auditor asked for (`None`: an
/// auditor who has not asked yet).
fn account(principal: &Principal, q: &MerchantQuery) -> Result<Option<String>, UiError> {
    principal.require(&[Role::Merchant, Role::Auditor])?;
    let address = match (principal.role, given(q.address.as_deref())) {
        (_, Some(address)) => address.to_owned(),
        (Role::Merchant, None) => principal.owner.clone(),
        _ => return Ok(None),
    };
    let account = merchants::account_for(principal, &address)?;
    Ok(Some(account.to_checksum(None)))
}

/// One token's balance.
#[derive(Debug)]
struct BalanceRow {
    token: String,
    token_name: String,
    balance: String,
    readable: String,
}

/// One payout.
#[derive(Debug)]
struct PayoutRow {
    payment_id: String,
    batch_id: String,
    tx_hash: String,
    token: String,
    amount: String,
    readable: String,
    payment_amount: String,
    share_percent: String,
    block_number: u64,
    log_index: u64,
}

fn token_name(token: alloy::primitives::Address) -> String {
    if token.is_zero() {
        "ETH (native)".to_owned()
    } else {
        token.to_checksum(None)
    }
}

/// Parts per million as a percentage (`900000` is `90`).
fn percent(share: u32) -> String {
    decimal(&share.to_string(), 4)
}

#[derive(Template)]
#[template(path = "merchant.html")]
struct MerchantPage {
    nav: Nav,
    address: Option<String>,
    is_auditor: bool,
    indexed_block: Option<u64>,
    balances: Vec<BalanceRow>,
    payouts: Vec<PayoutRow>,
    form: MerchantQuery,
    filters: String,
    next: Option<String>,
}

async fn payout_page(
    state: &AppState,
    account: alloy::primitives::Address,
    q: &MerchantQuery,
    before: Option<query::PayoutKey>,
    limit: usize,
) -> Result<query::Page<query::Payout, query::PayoutKey>, UiError> {
    let range = RangeParams {
        token: given(q.token.as_deref()),
        from_block: MerchantQuery::block("from_block", q.from_block.as_deref())?,
        to_block: MerchantQuery::block("to_block", q.to_block.as_deref())?,
        from_time: given(q.from_time.as_deref()),
        to_time: given(q.to_time.as_deref()),
    };
    let Some(filter) = listing::block_filter(state, &range).await? else {
        return Ok(query::Page {
            items: Vec::new(),
            next: None,
        });
    };
    Ok(query::payouts(
        state.pool(),
        listing::deployment(state),
        account,
        &filter,
        before,
        limit,
    )
    .await
    .map_err(listing::query_error)?)
}

/// `GET /ui/merchant`.
pub(crate) async fn page(
    State(state): State<AppState>,
    UiUser(principal): UiUser,
    Query(q): Query<MerchantQuery>,
) -> Result<Response, UiError> {
    let nav = Nav::new(&principal, "/ui/merchant");
    let is_auditor = principal.role != Role::Merchant;
    let Some(address) = account(&principal, &q).map_err(|e| e.with_nav(&principal))? else {
        return Ok(render(&MerchantPage {
            nav,
            address: None,
            is_auditor,
            indexed_block: None,
            balances: Vec::new(),
            payouts: Vec::new(),
            form: q,
            filters: String::new(),
            next: None,
        }));
    };
    let result: Result<_, UiError> = async {
        let account = crate::validate::address(&address)?;
        let indexed = query::balances(state.pool(), listing::deployment(&state), account)
            .await
            .map_err(listing::query_error)?;
        let before = given(q.cursor.as_deref())
            .map(listing::parse_payout_cursor)
            .transpose()?;
        let limit = listing::limit(None, state.config().max_page)?;
        let page = payout_page(&state, account, &q, before, limit).await?;
        Ok((indexed, page))
    }
    .await;
    let (indexed, page) = result.map_err(|e| e.with_nav(&principal))?;
    let balances = indexed
        .balances
        .iter()
        .map(|b| BalanceRow {
            token: b.token.to_checksum(None),
            token_name: token_name(b.token),
            balance: b.balance.to_string(),
            readable: decimal(&b.balance.to_string(), 18),
        })
        .collect();
    let payouts = page
        .items
        .iter()
        .map(|p| PayoutRow {
            payment_id: p.payment_id.to_string(),
            batch_id: p.batch_id.to_string(),
            tx_hash: p.tx_hash.to_string(),
            token: token_name(p.token),
            amount: p.amount.to_string(),
            readable: decimal(&p.amount.to_string(), 18),
            payment_amount: p.payment_amount.to_string(),
            share_percent: percent(p.share),
            block_number: p.key.block_number,
            log_index: p.key.log_index,
        })
        .collect();
    let filters = q.filters(&address);
    Ok(render(&MerchantPage {
        nav,
        address: Some(address),
        is_auditor,
        indexed_block: indexed.checkpoint.map(|c| c.block_number),
        balances,
        payouts,
        next: page.next.map(listing::payout_cursor),
        form: q,
        filters,
    }))
}

/// `GET /ui/merchant/payouts.csv`: every payout the filters select, newest first.
pub(crate) async fn csv(
    State(state): State<AppState>,
    UiUser(principal): UiUser,
    Query(q): Query<MerchantQuery>,
) -> Result<Response, UiError> {
    let address =
        account(&principal, &q)?.ok_or_else(|| bad_parameter("name the merchant's `address`"))?;
    let account = crate::validate::address(&address)?;
    let mut text = String::from(
        "payment_id,batch_id,tx_hash,block_number,log_index,token,payment_amount,share,amount\r\n",
    );
    let mut before = None;
    let mut rows = 0usize;
    loop {
        let page = payout_page(&state, account, &q, before, 1_000).await?;
        for p in &page.items {
            rows = rows.saturating_add(1);
            if rows > MAX_CSV_ROWS {
                return Err(bad_parameter(format!(
                    "more than {MAX_CSV_ROWS} payouts match; narrow the blocks or times"
                )));
            }
            let _ = write!(
                text,
                "{},{},{},{},{},{},{},{},{}\r\n",
                p.payment_id,
                p.batch_id,
                p.tx_hash,
                p.key.block_number,
                p.key.log_index,
                p.token.to_checksum(None),
                p.payment_amount,
                p.share,
                p.amount
            );
        }
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"payouts.csv\"",
            ),
        ],
        text,
    )
        .into_response())
}
