//! The one error the grammar gives: a line naming the bad part, exit 2.

use pipework_core::model::ParseError;

/// A usage error: one line, exit code 2.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageError(pub String);

impl From<ParseError> for UsageError {
    fn from(e: ParseError) -> Self {
        UsageError(e.to_string())
    }
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A usage error with this message.
pub(crate) fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}
