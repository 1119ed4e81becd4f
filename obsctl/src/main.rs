use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match obsctl::cli::run(obsctl::cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
