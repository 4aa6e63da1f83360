//! `meshward-mock-provider [--listen ADDR] [--delay-ms N] [--piece-chars N]`
//!
//! Runs the mock LLM provider until Ctrl-C or SIGTERM. See the library docs
//! for what it answers.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use meshward_mock_provider::{serve, Error, Options, Recorder};

const USAGE: &str = "usage: meshward-mock-provider [--listen ADDR] [--delay-ms N] [--piece-chars N]

  --listen ADDR      address to listen on (default 127.0.0.1:8300)
  --delay-ms N       wait N ms before a JSON reply and between SSE events (default 0)
  --piece-chars N    characters per streamed delta (default 4)

Endpoints: POST /v1/chat/completions (OpenAI, JSON or SSE), POST /v1/messages
(Anthropic, JSON or SSE), anything else echoes {\"received\": <body>}.
GET /__mock/requests lists what was received, DELETE clears it; GET /__mock/health.";

struct Args {
    listen: String,
    options: Options,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, Error> {
    let mut parsed = Args { listen: "127.0.0.1:8300".to_owned(), options: Options::default() };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| Error::Usage(format!("{name} needs a value\n\n{USAGE}")))
        };
        let number = |name: &str, v: String| {
            v.parse::<u64>().map_err(|_| Error::Usage(format!("{name}: not a number: {v:?}\n\n{USAGE}")))
        };
        match flag.as_str() {
            "--listen" => parsed.listen = value("--listen")?,
            "--delay-ms" => {
                let v = value("--delay-ms")?;
                parsed.options.delay = Duration::from_millis(number("--delay-ms", v)?);
            }
            "--piece-chars" => {
                let v = value("--piece-chars")?;
                let n = number("--piece-chars", v)?;
                parsed.options.piece_chars = usize::try_from(n.max(1)).unwrap_or(usize::MAX);
            }
            "-h" | "--help" => return Ok(None),
            other => return Err(Error::Usage(format!("unknown argument {other:?}\n\n{USAGE}"))),
        }
    }
    Ok(Some(parsed))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run(args: Args) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|source| Error::Bind { addr: args.listen.clone(), source })?;
    let addr = listener.local_addr().map_err(Error::Serve)?;
    println!("meshward-mock-provider listening on http://{addr}");
    let recorder = Arc::new(Recorder::new(args.options));
    tokio::select! {
        result = serve(listener, recorder) => result,
        _ = shutdown_signal() => Ok(()),
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("meshward-mock-provider: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("meshward-mock-provider: {}", Error::Runtime(e));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshward-mock-provider: {e}");
            ExitCode::FAILURE
        }
    }
}
