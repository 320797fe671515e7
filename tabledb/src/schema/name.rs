//! The one name rule, for tables, fields, types and relations.
//!
//! Names become file names (`data/<table>.<generation>.bin`), URL path segments and JSON keys,
//! so the rule is strict: 1 to 63 characters, lower-case ASCII letters, digits and `_`, not
//! starting with a digit — the regular expression `[a-z_][a-z0-9_]{0,62}`.

/// The longest name, in bytes.
pub const NAME_LEN_MAX: usize = 63;

/// The rule, as error messages state it.
pub const NAME_RULE: &str = "names are 1 to 63 characters from a-z, 0-9 and _, not starting with a digit";

/// The most bytes of a name (or any other string a request gave) an error message shows.
pub const SHOWN_NAME_MAX: usize = 64;

/// A string a request gave, as an error message shows it: in backquotes, and cut short after
/// [`SHOWN_NAME_MAX`] bytes (at a character boundary) with its length, so that a huge name is
/// not echoed back in full.
///
/// ```
/// use tabledb::schema::shown;
/// assert_eq!(shown("hp").to_string(), "`hp`");
/// assert_eq!(shown(&"a".repeat(70)).to_string(), format!("`{}...` (70 bytes)", "a".repeat(64)));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a>(pub &'a str);

/// `name` as an error message shows it; see [`Shown`].
pub fn shown(name: &str) -> Shown<'_> {
    Shown(name)
}

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0;
        if s.len() <= SHOWN_NAME_MAX {
            return write!(f, "`{s}`");
        }
        let end = s.floor_char_boundary(SHOWN_NAME_MAX);
        write!(f, "`{}...` ({} bytes)", &s[..end], s.len())
    }
}

/// Why a name was refused. Each message states the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the name is empty; {NAME_RULE}")]
    Empty,
    #[error("the name is {len} bytes long; {NAME_RULE}")]
    TooLong { len: usize },
    #[error("the name starts with the digit {0:?}; {NAME_RULE}")]
    LeadingDigit(char),
    #[error("the name has {ch:?} at position {pos}; {NAME_RULE}")]
    InvalidChar { ch: char, pos: usize },
    #[error("{} is reserved", shown(.0))]
    Reserved(String),
}

/// Checks `name` against the name rule.
///
/// ```
/// use tabledb::schema::validate_name;
/// assert!(validate_name("player_stats").is_ok());
/// assert!(validate_name("../x").is_err());
/// assert!(validate_name("Player").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some((pos, ch)) = name.chars().enumerate().find(|(_, c)| !matches!(c, 'a'..='z' | '0'..='9' | '_'))
    {
        return Err(NameError::InvalidChar { ch, pos });
    }
    if name.len() > NAME_LEN_MAX {
        return Err(NameError::TooLong { len: name.len() });
    }
    let first = name.as_bytes()[0];
    if first.is_ascii_digit() {
        return Err(NameError::LeadingDigit(first as char));
    }
    Ok(())
}

/// Names a field may not take: `id` is every record's identifier in JSON.
pub const RESERVED_FIELD_NAMES: &[&str] = &["id"];

/// Checks a field name: the name rule, and not a reserved name.
pub fn validate_field_name(name: &str) -> Result<(), NameError> {
    validate_name(name)?;
    if RESERVED_FIELD_NAMES.contains(&name) {
        return Err(NameError::Reserved(name.to_owned()));
    }
    Ok(())
}
