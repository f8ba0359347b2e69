//! The `switchboard` binary: `serve`, `check-config`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchboard::server::{self, Config, DriverChoice};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A thread-per-core WebRTC signaling appliance.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the appliance (on the embedded default configuration unless --config is given).
    Serve {
        /// Configuration file (TOML); see systemd/switchboard.toml.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Signaling listener address, e.g. 127.0.0.1:8080 (overrides server.listen).
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<std::net::SocketAddr>,
        /// Number of shards (threads); 0 = one per CPU (overrides server.shards).
        #[arg(long)]
        shards: Option<usize>,
        /// I/O driver (overrides server.driver).
        #[arg(long, value_enum)]
        driver: Option<DriverChoice>,
        /// STUN server address, UDP and TCP (overrides stun.listen and enables STUN).
        #[arg(long, value_name = "ADDR:PORT")]
        stun_listen: Option<std::net::SocketAddr>,
        /// Answer WebSocket echo at /v1/echo, for conformance testing only.
        #[arg(long)]
        echo_endpoint: bool,
        /// Admin listener for /metrics, /healthz, /readyz (overrides admin.listen and
        /// enables it).
        #[arg(long, value_name = "ADDR:PORT")]
        admin_listen: Option<std::net::SocketAddr>,
        /// Log format: "auto" (human on a terminal, JSON otherwise), "human" or "json".
        #[arg(long, default_value = "auto")]
        log_format: String,
    },
    /// Drive load against a signaling server and report latency and server CPU.
    Bench(switchboard::bench::BenchArgs),
    /// Ask a STUN server for this host's public mapping and, with RFC 5780, the NAT's
    /// mapping and filtering behaviour.
    NatCheck(switchboard::natcheck::NatCheckArgs),
    /// Validate a configuration file and print the effective configuration.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
}

fn init_logs(format: &str) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHBOARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match format {
        "json" => true,
        "human" => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn load(path: Option<&PathBuf>) -> Result<Config, String> {
    let mut cfg = match path {
        Some(p) => Config::load(p).map_err(|e| e.to_string())?,
        None => Config::embedded(),
    };
    cfg.apply_env(std::env::vars()).map_err(|e| e.to_string())?;
    Ok(cfg)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Bench(args) => match switchboard::bench::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::NatCheck(args) => match switchboard::natcheck::run(&args) {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::CheckConfig { file } => match load(Some(&file)) {
            Ok(cfg) => {
                print!(
                    "{}",
                    toml::to_string_pretty(&cfg).expect("a loaded config serialises")
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Serve {
            config,
            listen,
            shards,
            driver,
            stun_listen,
            echo_endpoint,
            admin_listen,
            log_format,
        } => {
            init_logs(&log_format);
            // The effective config: file (or embedded), environment, then the flags. A
            // reload (SIGHUP) builds it again the same way.
            let effective = move || -> Result<Config, String> {
                let mut cfg = load(config.as_ref())?;
                if let Some(l) = listen {
                    cfg.server.listen = l;
                }
                if let Some(s) = shards {
                    cfg.server.shards = s;
                }
                if let Some(d) = driver {
                    cfg.server.driver = d;
                }
                cfg.server.echo_endpoint |= echo_endpoint;
                if let Some(a) = admin_listen {
                    cfg.admin.listen = a;
                    cfg.admin.enabled = true;
                }
                if let Some(a) = stun_listen {
                    cfg.stun.listen = a;
                    cfg.stun.enabled = true;
                }
                Ok(cfg)
            };
            let cfg = match effective() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            serve(&cfg, Box::new(effective))
        }
    }
}

fn serve(cfg: &Config, effective: Box<dyn Fn() -> Result<Config, String> + Send>) -> ExitCode {
    // Handlers go in before the listeners open, so a stop that arrives as soon as the
    // service is reachable still drains instead of killing the process.
    let mut signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let running = match server::start(cfg) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "start failed");
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %running.local_addr, driver = running.driver.as_str(), version = env!("CARGO_PKG_VERSION"), "switchboard started");
    let shared = running.shared.clone();
    let tls = running.tls.clone();
    let running_cfg = cfg.clone();
    let handle = signals.handle();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == signal_hook::consts::SIGHUP {
                    // Reload the limits, then the certificate and key; sessions keep their
                    // connections. A config that does not load changes nothing.
                    match effective() {
                        Ok(new_cfg) => {
                            let restart = server::reload_limits(&shared, &running_cfg, &new_cfg);
                            tracing::info!("configuration reloaded");
                            if !restart.is_empty() {
                                tracing::warn!(settings = ?restart, "these settings changed but take effect only after a restart");
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "configuration reload failed; keeping the running configuration");
                        }
                    }
                    match tls.as_ref().map(|t| t.reload()) {
                        Some(Ok(())) => tracing::info!("TLS certificate reloaded"),
                        Some(Err(e)) => {
                            tracing::error!(error = %e, "TLS reload failed; keeping the old certificate");
                        }
                        None => tracing::info!("SIGHUP: nothing to reload (TLS is off)"),
                    }
                    continue;
                }
                tracing::info!(signal = sig, "stop requested; draining");
                shared.request_stop();
                server::notify::stopping();
                break;
            }
        })
        .expect("spawn signal thread");
    let result = running.join();
    handle.close();
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "stopped with an error");
            ExitCode::FAILURE
        }
    }
}
