//! `ssl.principal.mapping.rules` (Kafka's KIP-371): how a client certificate's subject
//! distinguished name (RFC 2253, [`super::principal`]) becomes the name of its principal.
//!
//! The setting is a list of rules separated by commas: `DEFAULT` (the whole DN) or
//! `RULE:pattern/replacement/` with an optional `L` (lower case) or `U` (upper case) after the
//! last slash; a `/` inside a pattern or replacement is written `\/`. The first rule whose
//! pattern matches the *whole* DN gives the name; when none matches, the connection is refused,
//! as Kafka refuses it. Unset, the rules are `DEFAULT`: `User:` and the full DN.
//!
//! The rules are split and parsed as Kafka's `SslPrincipalMapper` does, with its own two
//! regular expressions, and a matching rule's name is what Java's
//! `dn.replaceAll(pattern, replacement)` makes (every match of the pattern replaced, `$n` and
//! `${name}` group references, `\x` a literal `x`, a reference to a group the pattern does not
//! have a literal, as Kafka escapes it). Patterns are the `regex` crate's syntax, which is
//! Java's for everything a DN rule needs (classes, groups, lazy and greedy quantifiers, anchors)
//! but has no look-around or back-references: a rule using those is refused when the config is
//! loaded, as is a replacement Java would throw on (`$` not followed by a group, a trailing
//! `\`, `$1` in a pattern without groups). Matching runs in linear time.

use regex::Regex;

/// Java's `.` without DOTALL: anything but a line terminator.
const DOT: &str = r"[^\n\r\x{85}\x{2028}\x{2029}]";
/// Java's `\s`.
const SPACE: &str = r"[ \t\n\x0B\x0C\r]";

/// Kafka's `RULE_PATTERN`, with Java's `.` spelt out.
fn rule_pattern() -> String {
    format!(r"(DEFAULT)|RULE:((\\{DOT}|[^\\/])*)/((\\{DOT}|[^\\/])*)/([LU]?){DOT}*?|({DOT}*?)")
}

/// Kafka's `RULE_SPLITTER` (group 1 is one rule) and `RULE_PARSER` (anchored at the start, as
/// Java's `lookingAt`).
fn splitter_and_parser() -> (Regex, Regex) {
    let rule = rule_pattern();
    let splitter = Regex::new(&format!(r"{SPACE}*({rule}){SPACE}*(,{SPACE}*|\z)"))
        .expect("a constant pattern");
    let parser = Regex::new(&format!(r"\A(?:{rule})")).expect("a constant pattern");
    (splitter, parser)
}

/// The next position Java's `Matcher.find` searches from after a match `start..end`.
fn next_search(text: &str, start: usize, end: usize) -> usize {
    if start == end {
        end + text[end..].chars().next().map_or(1, char::len_utf8)
    } else {
        end
    }
}

/// The mapping of certificate subjects to principal names.
#[derive(Clone, Debug)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

#[derive(Clone, Debug)]
enum Rule {
    Default,
    Map {
        /// The pattern and replacement as written (what `Display` shows, as Kafka's `toString`).
        source: String,
        replacement_source: String,
        /// The pattern, searched for as Java's `replaceAll` does.
        pattern: Regex,
        /// The pattern anchored at both ends (Java's `Matcher.matches`).
        whole: Regex,
        replacement: Vec<Piece>,
        case: Case,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// A parsed Java replacement string.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Group(usize),
}

/// No rule matched a subject: the connection is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoMatchingRule(pub String);

impl std::fmt::Display for NoMatchingRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no ssl.principal.mapping.rules rule applies to {:?}",
            self.0
        )
    }
}

impl Default for PrincipalMapper {
    /// `DEFAULT`: the whole DN.
    fn default() -> Self {
        PrincipalMapper {
            rules: vec![Rule::Default],
        }
    }
}

impl PrincipalMapper {
    /// Parses the setting; an error names the rule refused and why.
    pub fn from_rules(rules: &str) -> Result<PrincipalMapper, String> {
        let (splitter, parser) = splitter_and_parser();
        // Java's `String.trim`: every character up to U+0020 at either end.
        let text = rules.trim_matches(|c: char| c <= ' ');
        let mut split = Vec::new();
        let mut from = 0;
        while from <= text.len() {
            let Some(found) = splitter.captures_at(text, from) else {
                break;
            };
            let whole = found.get(0).expect("group 0");
            split.push(found.get(1).map_or("", |m| m.as_str()));
            from = next_search(text, whole.start(), whole.end());
        }
        let mut parsed = Vec::new();
        for rule in split {
            let found = parser
                .captures(rule)
                .expect("the last alternative matches anything");
            let end = found.get(0).map_or(0, |m| m.end());
            if end != rule.len() {
                return Err(format!(
                    "invalid rule `{rule}`, unmatched substring: `{}`",
                    &rule[end..]
                ));
            }
            if found.get(1).is_some() {
                parsed.push(Rule::Default);
            } else if let Some(pattern) = found.get(2) {
                let replacement = found.get(4).map_or("", |m| m.as_str());
                let case = match found.get(6).map(|m| m.as_str()) {
                    Some("L") => Case::Lower,
                    Some("U") => Case::Upper,
                    _ => Case::Keep,
                };
                parsed.push(Rule::map(pattern.as_str(), replacement, case)?);
            }
            // Empty rules (`,,`) are skipped, as Kafka skips them.
        }
        Ok(PrincipalMapper { rules: parsed })
    }

    /// The principal name of a subject DN (RFC 2253), or the error that refuses the connection.
    pub fn name(&self, dn: &str) -> Result<String, NoMatchingRule> {
        self.rules
            .iter()
            .find_map(|rule| rule.apply(dn))
            .ok_or_else(|| NoMatchingRule(dn.to_string()))
    }
}

impl Rule {
    fn map(source: &str, replacement_text: &str, case: Case) -> Result<Rule, String> {
        let invalid =
            |why: String| format!("invalid rule `RULE:{source}/{replacement_text}/`: {why}");
        let pattern = Regex::new(source).map_err(|e| invalid(e.to_string()))?;
        let whole =
            Regex::new(&format!(r"\A(?:{source})\z")).map_err(|e| invalid(e.to_string()))?;
        let replacement = parse_replacement(replacement_text, &pattern).map_err(invalid)?;
        Ok(Rule::Map {
            source: source.to_string(),
            replacement_source: replacement_text.to_string(),
            pattern,
            whole,
            replacement,
            case,
        })
    }

    fn apply(&self, dn: &str) -> Option<String> {
        let Rule::Map {
            pattern,
            whole,
            replacement,
            case,
            ..
        } = self
        else {
            return Some(dn.to_string());
        };
        if !whole.is_match(dn) {
            return None;
        }
        let name = replace_all(pattern, dn, replacement);
        Some(match case {
            Case::Keep => name,
            Case::Lower => name.to_lowercase(),
            Case::Upper => name.to_uppercase(),
        })
    }
}

/// Java's `Matcher.replaceAll`: every match, found as `Matcher.find` finds them.
fn replace_all(pattern: &Regex, text: &str, replacement: &[Piece]) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut appended, mut from) = (0, 0);
    while from <= text.len() {
        let Some(found) = pattern.captures_at(text, from) else {
            break;
        };
        let whole = found.get(0).expect("group 0");
        out.push_str(&text[appended..whole.start()]);
        for piece in replacement {
            match piece {
                Piece::Text(literal) => out.push_str(literal),
                Piece::Group(n) => out.push_str(found.get(*n).map_or("", |m| m.as_str())),
            }
        }
        appended = whole.end();
        from = next_search(text, whole.start(), whole.end());
    }
    out.push_str(&text[appended..]);
    out
}

/// A Java replacement string after Kafka's `escapeLiteralBackReferences`: `$n` takes digits
/// while they name a group (`$12` is group 12 if there is one, else group 1 and a `2`), a first
/// digit past the groups is literal text, `${name}` a named group, `\x` the character `x`.
fn parse_replacement(text: &str, pattern: &Regex) -> Result<Vec<Piece>, String> {
    let groups = pattern.captures_len() - 1;
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => literal.push(escaped),
                None => return Err("the replacement ends in `\\`".into()),
            },
            '$' => match chars.peek().copied() {
                Some('{') => {
                    chars.next();
                    let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
                    let index = pattern
                        .capture_names()
                        .position(|n| n == Some(name.as_str()))
                        .ok_or_else(|| format!("the pattern has no group named {name:?}"))?;
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    pieces.push(Piece::Group(index));
                }
                Some(digit @ '0'..='9') => {
                    chars.next();
                    let mut index = digit.to_digit(10).expect("a digit") as usize;
                    if index > groups {
                        if groups == 0 {
                            // Kafka leaves `$1` alone without groups and Java throws on it at
                            // every connection: refused here instead.
                            return Err(format!("the pattern has no group {index}"));
                        }
                        // Kafka escapes a reference past the groups: literal text.
                        literal.push('$');
                        literal.push(digit);
                        continue;
                    }
                    while let Some(next) = chars.peek().and_then(|c| c.to_digit(10)) {
                        let longer = index * 10 + next as usize;
                        if longer > groups {
                            break;
                        }
                        index = longer;
                        chars.next();
                    }
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    pieces.push(Piece::Group(index));
                }
                _ => return Err("`$` in the replacement is not followed by a group".into()),
            },
            other => literal.push(other),
        }
    }
    pieces.push(Piece::Text(literal));
    pieces.retain(|p| *p != Piece::Text(String::new()));
    Ok(pieces)
}

impl std::fmt::Display for PrincipalMapper {
    /// The rules as Kafka's `toString` shows them (`[RULE:p/r/L, DEFAULT]`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rules: Vec<String> = self.rules.iter().map(Rule::to_string).collect();
        write!(f, "[{}]", rules.join(", "))
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::Default => f.write_str("DEFAULT"),
            Rule::Map {
                source,
                replacement_source,
                case,
                ..
            } => {
                write!(f, "RULE:{source}/{replacement_source}")?;
                match case {
                    Case::Keep => Ok(()),
                    Case::Lower => f.write_str("/L"),
                    Case::Upper => f.write_str("/U"),
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Kafka's `SslPrincipalMapperTest.testValidRules`.
    #[test]
    fn kafkas_valid_rules_parse() {
        for rules in [
            "DEFAULT",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT",
            "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/",
            "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L",
            "RULE:^cn=(.?),ou=(.?),dc=(.?),dc=(.?)$/$1@$2/U",
            "RULE:^CN=([^,ADEFLTU,]+)(,.*|$)/$1/",
            "RULE:^CN=([^,DEFAULT,]+)(,.*|$)/$1/",
        ] {
            PrincipalMapper::from_rules(rules).unwrap_or_else(|e| panic!("{rules}: {e}"));
        }
    }

    /// Kafka's `testInvalidRules`, and what Java would only throw on at a connection.
    #[test]
    fn kafkas_invalid_rules_are_refused_with_the_rule_named() {
        for rules in [
            "default",
            "DEFAUL",
            "DEFAULT/L",
            "DEFAULT/U",
            "RULE:CN=(.*?),OU=ServiceUsers.*/$1",
            "rule:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/L",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/LU",
            // Beyond Kafka's list: a regex the crate refuses, replacements Java throws on.
            "RULE:^CN=(?=x)(.*)$/$1/",
            "RULE:^CN=(.*)$/$x/",
            "RULE:^CN=.*$/$1/",
            "RULE:^CN=(.*)$/${user}/",
        ] {
            let error = PrincipalMapper::from_rules(rules).unwrap_err();
            assert!(error.contains("invalid rule"), "{rules}: {error}");
        }
        let error =
            PrincipalMapper::from_rules("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U").unwrap_err();
        assert!(error.contains("unmatched substring: `/U`"), "{error}");
    }

    /// Kafka's `testSslPrincipalMapper`.
    #[test]
    fn kafkas_mapper_examples() {
        let mapper = PrincipalMapper::from_rules(
            &[
                "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L",
                "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L",
                "RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U",
                "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U",
                "DEFAULT",
            ]
            .join(", "),
        )
        .unwrap();
        for (dn, name) in [
            ("CN=Duke,OU=ServiceUsers,O=Org,C=US", "duke"),
            ("CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US", "duke@sme"),
            ("cn=duke,ou=sme,dc=mycp,dc=com", "DUKE@SME"),
            ("cN=duke,OU=JavaSoft,O=Sun Microsystems", "DUKE"),
            (
                "OU=JavaSoft,O=Sun Microsystems,C=US",
                "OU=JavaSoft,O=Sun Microsystems,C=US",
            ),
        ] {
            assert_eq!(mapper.name(dn).unwrap(), name, "{dn}");
        }
    }

    #[test]
    fn the_issues_example_and_no_match() {
        let mapper =
            PrincipalMapper::from_rules("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,DEFAULT").unwrap();
        assert_eq!(
            mapper
                .name("CN=kafka1,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .unwrap(),
            "kafka1"
        );
        assert_eq!(mapper.name("CN=bob,OU=People").unwrap(), "CN=bob,OU=People");
        // Without DEFAULT, a subject no rule matches has no name: the connection is refused.
        let strict = PrincipalMapper::from_rules("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/").unwrap();
        assert_eq!(
            strict.name("CN=bob,OU=People"),
            Err(NoMatchingRule("CN=bob,OU=People".into()))
        );
        // No rules at all (an empty setting, as Kafka's): nothing matches.
        assert!(PrincipalMapper::from_rules("")
            .unwrap()
            .name("CN=a")
            .is_err());
        // Unset: DEFAULT, the whole DN.
        assert_eq!(
            PrincipalMapper::default().name("CN=a,O=b").unwrap(),
            "CN=a,O=b"
        );
    }

    /// Kafka's `testRulesSplitting`, compared through its `toString`.
    #[test]
    fn kafkas_rule_splitting() {
        for (expected, rules) in [
            ("[]", ""),
            ("[DEFAULT]", "DEFAULT"),
            ("[RULE:/]", "RULE://"),
            ("[RULE:/.*]", "RULE:/.*/"),
            ("[RULE:/.*/L]", "RULE:/.*/L"),
            ("[RULE:/, DEFAULT]", "RULE://,DEFAULT"),
            ("[RULE:/, DEFAULT]", "  RULE:// ,  DEFAULT  "),
            (
                "[RULE:   /     , DEFAULT]",
                "  RULE:   /     / ,  DEFAULT  ",
            ),
            (
                "[RULE:  /     /U, DEFAULT]",
                "  RULE:  /     /U   ,DEFAULT  ",
            ),
            (
                "[RULE:([A-Z]*)/$1/U, RULE:([a-z]+)/$1, DEFAULT]",
                "  RULE:([A-Z]*)/$1/U   ,RULE:([a-z]+)/$1/,   DEFAULT  ",
            ),
            // Empty rules are skipped.
            ("[]", ",   , , ,      , , ,   "),
            ("[RULE:/, DEFAULT]", ",,RULE://,,,DEFAULT,,"),
            (
                "[RULE: /   , DEFAULT]",
                ",  , RULE: /   /    ,,,   DEFAULT, ,   ",
            ),
            (
                "[RULE:   /  , DEFAULT]",
                "     ,  , RULE:   /  /    ,,,   DEFAULT, ,   ",
            ),
            // Escape sequences.
            (
                "[RULE:\\/\\\\\\(\\)\\n\\t/\\/\\/]",
                "RULE:\\/\\\\\\(\\)\\n\\t/\\/\\//",
            ),
            (
                "[RULE:\\**\\/+/*/L, RULE:\\/*\\**/**]",
                "RULE:\\**\\/+/*/L,RULE:\\/*\\**/**/",
            ),
            // Commas in rules.
            ("[RULE:,/, DEFAULT]", "RULE:,//,DEFAULT"),
            ("[RULE:,/, DEFAULT]", "  RULE:,// ,  DEFAULT  "),
            // Rules on lines of their own, each line ending in a comma (Kafka's docs' layout).
            (
                "[RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT]",
                "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L,\n  DEFAULT\n",
            ),
        ] {
            let mapper =
                PrincipalMapper::from_rules(rules).unwrap_or_else(|e| panic!("{rules:?}: {e}"));
            assert_eq!(mapper.to_string(), expected, "{rules:?}");
        }
    }

    #[test]
    fn escapes_commas_and_group_references() {
        // Kafka's `testCommaWithWhitespace`.
        let mapper =
            PrincipalMapper::from_rules("RULE:^CN=((\\\\, *|\\w)+)(,.*|$)/$1/,DEFAULT").unwrap();
        assert_eq!(
            mapper
                .name("CN=Tkac\\, Adam,OU=ITZ,DC=geodis,DC=cz")
                .unwrap(),
            "Tkac\\, Adam"
        );
        // An escaped slash in the pattern and the replacement.
        let mapper = PrincipalMapper::from_rules("RULE:^CN=(.*)\\/(.*)$/$2\\/$1/").unwrap();
        assert_eq!(mapper.name("CN=a/b").unwrap(), "b/a");
        // `$12` with one group is group 1 and a `2`; `$3` past the groups is literal; `$0` the
        // whole match; named groups.
        let mapper = PrincipalMapper::from_rules("RULE:^CN=(.*)$/$12-$3-$0/").unwrap();
        assert_eq!(mapper.name("CN=x").unwrap(), "x2-$3-CN=x");
        let mapper = PrincipalMapper::from_rules("RULE:^CN=(?<user>\\w+),.*$/${user}/U").unwrap();
        assert_eq!(mapper.name("CN=eve,O=x").unwrap(), "EVE");
        // Java's replaceAll replaces every match: an unanchored pattern that matches the empty
        // string at the end appends the replacement again, as `"ab".replaceAll(".*", "x")`
        // gives `xx`.
        let mapper = PrincipalMapper::from_rules("RULE:.*/x/").unwrap();
        assert_eq!(mapper.name("ab").unwrap(), "xx");
    }
}
