//! `sluice bench`: load generation and measurement against a real server.

use clap::Args;

#[derive(Args, Debug)]
pub struct BenchArgs {}

#[derive(Args, Debug)]
pub struct NullServerArgs {
    #[arg(long)]
    pub listen: std::net::SocketAddr,
}

pub async fn run(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}

pub async fn null_server(_args: NullServerArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
