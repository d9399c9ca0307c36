//! `mapi-token`: makes and checks the JWTs that select a caller's special quotes, like the
//! reference's token manager.
//!
//!     mapi-token generate -n NAME -d DAYS -k KEY -i ISSUER [-a AUDIENCE]
//!     mapi-token validate -k KEY -t TOKEN [-i ISSUER] [-a AUDIENCE]
#![allow(clippy::print_stdout, reason = "a command-line tool prints its results")]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

#[derive(Parser)]
#[command(name = "mapi-token", about = "Generate and validate mAPI JWT bearer tokens (HS256)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Prints a token and the Authorization header that carries it.
    Generate {
        /// The identity (the `sub` claim).
        #[arg(short = 'n', long)]
        name: String,
        /// Days until the token expires.
        #[arg(short = 'd', long, allow_negative_numbers = true)]
        days: i64,
        /// The symmetric key shared with the gateway's identity provider (at least 16 characters).
        #[arg(short = 'k', long)]
        key: String,
        /// The issuer.
        #[arg(short = 'i', long)]
        issuer: String,
        /// The audience.
        #[arg(short = 'a', long)]
        audience: Option<String>,
    },
    /// Checks a token's signature and time constraints.
    Validate {
        /// The symmetric key.
        #[arg(short = 'k', long)]
        key: String,
        /// The token.
        #[arg(short = 't', long)]
        token: String,
        /// The expected issuer (any when absent).
        #[arg(short = 'i', long)]
        issuer: Option<String>,
        /// The expected audience (not checked when absent).
        #[arg(short = 'a', long)]
        audience: Option<String>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Generate { name, days, key, issuer, audience } => {
            if key.len() < 16 {
                eprintln!("the key must be at least 16 characters");
                return ExitCode::FAILURE;
            }
            let now = time::OffsetDateTime::now_utc();
            let exp = now + time::Duration::days(days);
            let mut claims = serde_json::json!({
                "sub": name, "iss": issuer, "iat": now.unix_timestamp(), "nbf": now.unix_timestamp(), "exp": exp.unix_timestamp(),
            });
            if let Some(aud) = audience {
                claims["aud"] = aud.into();
            }
            match jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(key.as_bytes()),
            ) {
                Ok(token) => {
                    println!("Token: {claims}");
                    println!("Valid until UTC: {exp}");
                    println!("The following should be used as authorization header:");
                    println!("Bearer {token}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("could not sign the token: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Validate { key, token, issuer, audience } => {
            let mut validation = Validation::new(Algorithm::HS256);
            validation.leeway = 0;
            validation.set_required_spec_claims(&["exp"]);
            validation.validate_nbf = true;
            if let Some(iss) = &issuer {
                validation.set_issuer(&[iss]);
            }
            match &audience {
                Some(aud) => validation.set_audience(&[aud]),
                None => validation.validate_aud = false,
            }
            let token = token.trim().trim_start_matches("Bearer ").trim();
            match jsonwebtoken::decode::<serde_json::Value>(
                token,
                &DecodingKey::from_secret(key.as_bytes()),
                &validation,
            ) {
                Ok(data) => {
                    println!("Token signature and time constraints are OK. Claims: {}", data.claims);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    println!("Token is not valid: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
