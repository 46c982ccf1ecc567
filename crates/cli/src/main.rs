//! `weft`: workflow automation scenarios as YAML, run by one fast binary.
//!
//! Each subcommand lives in `commands/`; this file parses the command line, sets up
//! logging and maps outcomes to exit codes (0 success, 1 execution or validation failed,
//! 2 usage error).

/// `print!` that stops quietly when stdout is closed (`weft run --json | head`) instead of
/// panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_stdout(&format!($($arg)*))
    };
}

/// `println!` that stops quietly when stdout is closed.
macro_rules! outln {
    () => {
        $crate::write_stdout("\n")
    };
    ($($arg:tt)*) => {
        $crate::write_stdout(&format!("{}\n", format!($($arg)*)))
    };
}

mod commands;
mod registry;

/// mimalloc instead of the system allocator: the hot path (HTTP intake, execution records,
/// JSON) allocates many small short-lived objects across threads (docs/decisions/0006).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Writes to stdout; if the reader has gone away, exits with status 1 without a panic.
pub fn write_stdout(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        std::process::exit(1);
    }
}

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// weft runs Make-style automation scenarios written as YAML.
#[derive(Parser)]
#[command(name = "weft", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Load and check scenario files; report every problem with file:line and a fix.
    Validate(commands::validate::Args),
    /// Run one execution of a scenario from a trigger bundle.
    Run(commands::run::Args),
    /// Draw a scenario's module graph (Mermaid or Graphviz DOT).
    Graph(commands::graph::Args),
    /// List every module with its fields.
    Modules(commands::modules::Args),
    /// Serve every scenario of a folder: webhooks, workers, schedules, history.
    Serve(commands::serve::Args),
    /// Inspect and retry executions recorded by `weft serve`.
    Executions(commands::executions::Args),
    /// Hook URLs of the scenarios' instant triggers.
    #[command(subcommand)]
    Hooks(HooksCmd),
    /// Remove a scenario's webhook registrations from its app (e.g. Sonar).
    Deactivate(commands::hooks::DeactivateArgs),
    /// Serve scenarios/ against the built-in Sonar simulator, drive a short story through
    /// it and print what happened.
    Demo(commands::demo::Args),
    /// Run the Sonar API simulator (for tests and demos).
    SonarSim(commands::sim::Args),
}

#[derive(Subcommand)]
enum HooksCmd {
    /// List every hook: scenario, module and URL.
    List(commands::hooks::ListArgs),
}

/// What a command ended with; `main` turns it into the exit code.
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1: the execution or validation failed (already reported).
    Failed,
}

fn init_logging(format: LogFormat, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("WEFT_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    // A subscriber may already be set (tests); logging then goes there.
    drop(result);
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::SonarSim(_) | Command::Serve(_) => "info",
        _ => "warn",
    };
    init_logging(cli.log_format, default_level);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // `weft serve --threads N`; otherwise tokio's default, one thread per core (decision 0011).
    if let Command::Serve(a) = &cli.command {
        if let Some(n) = a.threads {
            builder.worker_threads(usize::from(n));
        }
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Validate(a) => commands::validate::run(a),
            Command::Run(a) => commands::run::run(a).await,
            Command::Graph(a) => commands::graph::run(a),
            Command::Modules(a) => commands::modules::run(a),
            Command::Serve(a) => commands::serve::run(a).await,
            Command::Executions(a) => commands::executions::run(a).await,
            Command::Hooks(HooksCmd::List(a)) => commands::hooks::list(a).await,
            Command::Deactivate(a) => commands::hooks::deactivate(a).await,
            Command::Demo(a) => commands::demo::run(a).await,
            Command::SonarSim(a) => commands::sim::run(a).await,
        }
    });
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(1),
        Err(commands::CliError::Usage(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(commands::CliError::Failed(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
