//! Argument checks made before a request is sent: the same rules the server applies to ids, so
//! that a mistake is a clear [`Error::InvalidArgument`] naming the argument instead of a round
//! trip (or, for an empty id, a request to a different route: `GET /v1/items/` is the listing).

use marquee_types::MAX_ID_BYTES;

use crate::error::{Error, Result};

/// Ids are 1–256 bytes without control characters.
pub(crate) fn validate_id(param: &str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid(param, "must not be empty"));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(Error::invalid(
            param,
            format!("is {} bytes long; the limit is {MAX_ID_BYTES}", id.len()),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(Error::invalid(param, "must not contain control characters"));
    }
    Ok(())
}

/// A batch element's id: present and valid.
pub(crate) fn validate_element_id(param: &str, index: usize, id: Option<&str>) -> Result<()> {
    let id = id.ok_or_else(|| Error::invalid(param, format!("element {index} has no id")))?;
    validate_id(param, id).map_err(|e| match e {
        Error::InvalidArgument { param, message } => Error::InvalidArgument {
            param,
            message: format!("element {index}: {message}"),
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_server_rules() {
        assert!(validate_id("item_id", "tt0076759").is_ok());
        assert!(validate_id("item_id", "é✓ 1/2").is_ok());
        let e = validate_id("item_id", "").unwrap_err();
        assert_eq!(e.code(), "invalid_argument");
        assert!(e.to_string().contains("item_id"), "{e}");
        assert!(validate_id("item_id", &"x".repeat(257)).is_err());
        assert!(validate_id("item_id", &"x".repeat(256)).is_ok());
        assert!(validate_id("item_id", "a\nb").is_err());
        let e = validate_element_id("items", 3, None).unwrap_err();
        assert!(e.to_string().contains("element 3"), "{e}");
    }
}
