//! `switchboard bench`: the load generator (in progress).

/// Arguments of `switchboard bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Signaling URL of the server under test, e.g. ws://127.0.0.1:8080/v1/signal.
    #[arg(long)]
    pub target: String,
}

/// Runs the load generator.
///
/// # Errors
/// A description of what failed.
pub fn run(args: &BenchArgs) -> Result<(), String> {
    Err(format!("bench is not built yet (target {})", args.target))
}
