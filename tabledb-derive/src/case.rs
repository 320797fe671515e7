//! Naming conventions: struct names to table names, field names to constant names.

/// `PlayerStats` → `player_stats`, `HTTPServer` → `http_server`, `Vec3` → `vec3`.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                None | Some('_') => false,
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_uppercase() => next.is_some_and(char::is_lowercase),
                Some(_) => false,
            };
            if boundary {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `hp` → `HP`, `max_hp` → `MAX_HP`.
pub fn upper_case(name: &str) -> String {
    name.to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn snake_case_splits_words_and_acronyms() {
        assert_eq!(snake_case("Player"), "player");
        assert_eq!(snake_case("PlayerStats"), "player_stats");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("Vec3"), "vec3");
        assert_eq!(snake_case("Vec3D"), "vec3_d");
        assert_eq!(snake_case("already_snake"), "already_snake");
    }
}
