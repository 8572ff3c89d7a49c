use alloy::{primitives::utils::parse_ether, providers::Provider};
use settle_testkit::TestChain;

#[tokio::test]
async fn anvil_answers_chain_id_with_funded_accounts() -> settle_testkit::Result<()> {
    let chain = TestChain::start()?;
    let provider = chain.provider();

    let chain_id = provider.get_chain_id().await.expect("eth_chainId");
    assert_eq!(chain_id, 31_337);
    assert_eq!(chain.chain_id(), 31_337);
    assert_eq!(
        chain.endpoint(),
        format!("http://127.0.0.1:{}", chain.port())
    );

    assert_eq!(chain.signers().len(), 10);
    assert_eq!(chain.addresses().len(), 10);
    for (signer, address) in chain.signers().iter().zip(chain.addresses()) {
        assert_eq!(signer.address(), *address);
        assert_eq!(signer.chain_id(), Some(31_337));
    }
    let balance = provider
        .get_balance(chain.addresses()[0])
        .await
        .expect("eth_getBalance");
    assert_eq!(balance, parse_ether("10000").expect("literal"));
    Ok(())
}

#[tokio::test]
async fn two_chains_listen_on_different_ports() -> settle_testkit::Result<()> {
    let first = TestChain::start()?;
    let second = TestChain::start()?;
    assert_ne!(first.port(), second.port());
    assert_ne!(first.port(), 0);

    let a = first
        .provider()
        .get_block_number()
        .await
        .expect("block number");
    let b = second
        .provider()
        .get_block_number()
        .await
        .expect("block number");
    assert_eq!((a, b), (0, 0));
    Ok(())
}

#[tokio::test]
async fn dropping_the_chain_stops_anvil() -> settle_testkit::Result<()> {
    let chain = TestChain::start()?;
    let url = chain.endpoint_url();
    drop(chain);
    let provider = alloy::providers::ProviderBuilder::new().connect_http(url);
    assert!(
        provider.get_chain_id().await.is_err(),
        "anvil still answers after drop"
    );
    Ok(())
}
