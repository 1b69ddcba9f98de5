//! One set of exit codes for every command, and the final error line: text, or
//! one JSON object under `LOG_FORMAT=json` so that CI can parse it.

use ecr_operator::Error;
use ecr_operator::oci::MirrorError;
use ecr_operator::runtime::logging::LogFormat;

// 0 is success, 2 a usage error (clap and `aws_args::usage_exit` exit with it).

/// Retrying the same command will not help: denied, not found, bad input.
pub const PERMANENT: u8 = 1;
/// A throttle, a 5xx, a timeout or a lost connection outlasted the retries:
/// the same command may succeed later.
pub const RETRYABLE: u8 = 3;

/// The help text every command shows.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  permanent failure: denied, unauthorized, not found, invalid input, file errors
  2  usage error: unknown or malformed flag, missing region
  3  retryable failure: throttled, 5xx, timeout or connection lost after the retries";

/// Marks an error that may go away by itself (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct Retryable(pub anyhow::Error);

pub fn retryable(e: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(Retryable(e.into()))
}

/// The exit code of a failed command.
pub fn code(e: &anyhow::Error) -> u8 {
    let transient = e.chain().any(|c| {
        c.downcast_ref::<Retryable>().is_some()
            || c.downcast_ref::<MirrorError>()
                .is_some_and(MirrorError::is_retryable)
            || c.downcast_ref::<Error>().is_some_and(|e| {
                matches!(
                    e,
                    Error::Throttled { .. } | Error::Timeout { .. } | Error::Network { .. }
                )
            })
    });
    if transient { RETRYABLE } else { PERMANENT }
}

/// Prints the final error on stderr: `error: …`, or under JSON logging one object
/// `{"level":"ERROR","error":…,"exitCode":N,"retryable":bool}`.
pub fn report(e: &anyhow::Error, format: LogFormat) -> u8 {
    let code = code(e);
    match format {
        LogFormat::Text => eprintln!("error: {e:#}"),
        LogFormat::Json => eprintln!("{}", json_line(e, code)),
    }
    code
}

fn json_line(e: &anyhow::Error, code: u8) -> String {
    serde_json::json!({
        "timestamp": jiff::Timestamp::now().to_string(),
        "level": "ERROR",
        "message": "failed",
        "error": format!("{e:#}"),
        "exitCode": code,
        "retryable": code == RETRYABLE,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_cause() {
        let denied = anyhow::anyhow!("access denied");
        assert_eq!(code(&denied), PERMANENT);
        assert_eq!(code(&retryable(anyhow::anyhow!("503"))), RETRYABLE);
        let throttled = anyhow::Error::new(Error::Throttled {
            operation: "GetAuthorizationToken",
        });
        assert_eq!(code(&throttled), RETRYABLE);
        let unreachable = anyhow::Error::new(MirrorError::Unreachable {
            registry: "r".into(),
            detail: "reset".into(),
        })
        .context("copying");
        assert_eq!(code(&unreachable), RETRYABLE);
    }

    #[test]
    fn the_json_line_is_one_object() {
        let line = json_line(&retryable(anyhow::anyhow!("HTTP 503")), RETRYABLE);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["error"], "HTTP 503");
        assert_eq!(v["exitCode"], 3);
        assert_eq!(v["retryable"], true);
        assert_eq!(v["level"], "ERROR");
    }
}
