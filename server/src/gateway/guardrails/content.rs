//! The built-in content filter (`guardrail: litellm_content_filter`, and
//! `hide-secrets`): prebuilt patterns for personal data and secrets, custom
//! regular expressions, banned words and phrases, and a maximum input size.
//! It runs in the process and calls nothing.
//!
//! A pattern's checksum (Luhn for cards, mod-97 for IBANs, the SSA's rules
//! for SSNs, address parsing for IPs) runs on every match, so digits that
//! only look like a card number are left alone.

use regex::Regex;
use std::collections::HashMap;
use std::net::Ipv6Addr;

/// What a match does: refuse the text, or replace the match with a placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Block,
    Mask,
}

/// A check on a match: (whole text, match, start, end).
type Validator = fn(&str, &str, usize, usize) -> bool;

/// One kind of sensitive value.
pub struct Pattern {
    /// Its name in errors and logs (`email`, `credit_card`, or the custom name).
    pub name: String,
    /// The placeholder's stem: `[EMAIL_1]`.
    pub label: String,
    regex: Regex,
    /// A check every match must also pass (checksum, boundaries).
    valid: Option<Validator>,
    pub action: Action,
}

/// A banned word or phrase.
pub struct Word {
    pub keyword: String,
    pub action: Action,
    pub description: Option<String>,
}

/// What the filter found in a text that blocks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// The pattern or word that matched (never the matched value).
    pub what: String,
}

/// Values replaced by placeholders, so that they can be put back into the
/// answer for the caller (`unmask`), and numbered alike across a request.
#[derive(Debug, Default, Clone)]
pub struct Masks {
    /// placeholder → original
    pub originals: HashMap<String, String>,
    by_value: HashMap<(String, String), String>,
    counts: HashMap<String, usize>,
}

impl Masks {
    fn placeholder(&mut self, label: &str, value: &str) -> String {
        if let Some(p) = self.by_value.get(&(label.to_string(), value.to_string())) {
            return p.clone();
        }
        let n = self.counts.entry(label.to_string()).or_insert(0);
        *n += 1;
        let p = format!("[{label}_{n}]");
        self.originals.insert(p.clone(), value.to_string());
        self.by_value
            .insert((label.to_string(), value.to_string()), p.clone());
        p
    }

    pub fn is_empty(&self) -> bool {
        self.originals.is_empty()
    }

    /// The longest placeholder, for holding back the end of a stream.
    pub fn longest(&self) -> usize {
        self.originals.keys().map(String::len).max().unwrap_or(0)
    }

    /// `text` with every placeholder put back to its original value.
    pub fn unmask(&self, text: &str) -> String {
        if self.originals.is_empty() || !text.contains('[') {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find('[') {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            match tail.find(']').and_then(|j| {
                self.originals
                    .get(&tail[..=j])
                    .map(|orig| (j, orig.as_str()))
            }) {
                Some((j, orig)) => {
                    out.push_str(orig);
                    rest = &tail[j + 1..];
                }
                None => {
                    out.push('[');
                    rest = &tail[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// The filter one guardrail entry configures.
#[derive(Default)]
pub struct ContentFilter {
    pub patterns: Vec<Pattern>,
    words: Option<(Regex, Vec<Word>)>,
    /// Characters of text a request may send in all (`max_input_chars`).
    pub max_input_chars: Option<usize>,
}

/// One finding in a text: byte range, what matched, what to do.
struct Hit<'a> {
    start: usize,
    end: usize,
    label: &'a str,
    what: &'a str,
    action: Action,
}

impl ContentFilter {
    pub fn new(
        patterns: Vec<Pattern>,
        words: Vec<Word>,
        max_input_chars: Option<usize>,
    ) -> Result<ContentFilter, String> {
        let words = if words.is_empty() {
            None
        } else {
            let alternatives: Vec<String> = words
                .iter()
                .map(|w| {
                    let k = regex::escape(w.keyword.trim());
                    let starts = w.keyword.trim().starts_with(|c: char| c.is_alphanumeric());
                    let ends = w.keyword.trim().ends_with(|c: char| c.is_alphanumeric());
                    format!(
                        "{}{k}{}",
                        if starts { r"\b" } else { "" },
                        if ends { r"\b" } else { "" }
                    )
                })
                .collect();
            let re = Regex::new(&format!("(?i)(?:{})", alternatives.join("|")))
                .map_err(|e| format!("blocked_words: {e}"))?;
            Some((re, words))
        };
        Ok(ContentFilter {
            patterns,
            words,
            max_input_chars,
        })
    }

    fn hits<'s>(&'s self, text: &str) -> Vec<Hit<'s>> {
        let mut hits = Vec::new();
        for p in &self.patterns {
            for m in p.regex.find_iter(text) {
                if p.valid
                    .is_none_or(|ok| ok(text, m.as_str(), m.start(), m.end()))
                {
                    hits.push(Hit {
                        start: m.start(),
                        end: m.end(),
                        label: &p.label,
                        what: &p.name,
                        action: p.action,
                    });
                }
            }
        }
        if let Some((re, words)) = &self.words {
            for m in re.find_iter(text) {
                let found = m.as_str().to_lowercase();
                if let Some(w) = words
                    .iter()
                    .find(|w| w.keyword.trim().to_lowercase() == found)
                {
                    hits.push(Hit {
                        start: m.start(),
                        end: m.end(),
                        label: "REDACTED",
                        what: w.description.as_deref().unwrap_or(&w.keyword),
                        action: w.action,
                    });
                }
            }
        }
        hits.sort_by_key(|h| (h.start, std::cmp::Reverse(h.end)));
        hits
    }

    /// Checks `text`: the first blocking match refuses it; masking matches are
    /// replaced by placeholders recorded in `masks`. Returns the new text when
    /// something was masked.
    pub fn apply(&self, text: &str, masks: &mut Masks) -> Result<Option<String>, Blocked> {
        let hits = self.hits(text);
        if hits.is_empty() {
            return Ok(None);
        }
        if let Some(h) = hits.iter().find(|h| h.action == Action::Block) {
            return Err(Blocked {
                what: h.what.to_string(),
            });
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for h in &hits {
            if h.start < at {
                continue; // inside a longer match already replaced
            }
            out.push_str(&text[at..h.start]);
            out.push_str(&masks.placeholder(h.label, &text[h.start..h.end]));
            at = h.end;
        }
        out.push_str(&text[at..]);
        Ok(Some(out))
    }

    /// Where matches are in `text` (byte ranges), whatever their action.
    pub fn spans(&self, text: &str) -> Vec<(usize, usize)> {
        self.hits(text).iter().map(|h| (h.start, h.end)).collect()
    }

    /// The longest text a match can plausibly span, for holding back the end
    /// of a stream until it cannot be the start of one.
    pub fn reach(&self) -> usize {
        let words = self
            .words
            .as_ref()
            .map(|(_, w)| w.iter().map(|w| w.keyword.len()).max().unwrap_or(0))
            .unwrap_or(0);
        let patterns = if self.patterns.is_empty() { 0 } else { 96 };
        words.max(patterns)
    }
}

/// The prebuilt patterns by name; `pii` and `secrets` name groups of them.
pub fn prebuilt(name: &str, action: Action) -> Result<Vec<Pattern>, String> {
    let names: Vec<&str> = match name {
        "pii" => PII.to_vec(),
        "secrets" => SECRETS.to_vec(),
        n => vec![n],
    };
    names
        .into_iter()
        .map(|n| {
            let (label, re, valid): (&str, &str, Option<Validator>) =
                match n {
                    "email" => (
                        "EMAIL",
                        r"(?i)\b[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b",
                        None,
                    ),
                    "phone" | "us_phone" | "phone_number" => (
                        "PHONE",
                        r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)|\d{2,4})[ .-]?\d{3,4}[ .-]?\d{3,4}\b",
                        Some(phone_ok),
                    ),
                    "credit_card" => ("CREDIT_CARD", r"\b\d(?:[ -]?\d){12,18}\b", Some(card_ok)),
                    "iban" => (
                        "IBAN",
                        r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
                        Some(iban_ok),
                    ),
                    "us_ssn" | "ssn" => ("US_SSN", r"\b\d{3}-\d{2}-\d{4}\b", Some(ssn_ok)),
                    "ipv4" => (
                        "IP_ADDRESS",
                        r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b",
                        None,
                    ),
                    "ipv6" => (
                        "IP_ADDRESS",
                        r"(?i)(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}",
                        Some(ipv6_ok),
                    ),
                    "ip_address" => (
                        "IP_ADDRESS",
                        r"(?i)\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b|(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}",
                        Some(ip_ok),
                    ),
                    "aws_access_key" => (
                        "AWS_ACCESS_KEY",
                        r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",
                        None,
                    ),
                    "aws_secret_key" => (
                        "AWS_SECRET_KEY",
                        r"(?i)(?:aws_secret_access_key|secret_access_key|aws_secret_key|aws_secret)\W{0,5}[A-Za-z0-9/+=]{40}\b",
                        None,
                    ),
                    "github_token" => (
                        "GITHUB_TOKEN",
                        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})\b",
                        None,
                    ),
                    "slack_token" => ("SLACK_TOKEN", r"\bxox[abposr]-[A-Za-z0-9-]{10,}", None),
                    "api_key" | "generic_api_key" => (
                        "API_KEY",
                        r"\b(?:sk|pk|rk)-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{20,}",
                        None,
                    ),
                    "private_key" => (
                        "PRIVATE_KEY",
                        r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z]+ )*PRIVATE KEY-----",
                        None,
                    ),
                    "jwt" => (
                        "JWT",
                        r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",
                        None,
                    ),
                    other => {
                        return Err(format!(
                            "unknown prebuilt pattern {other:?}; known: pii, secrets, {}",
                            PII.iter().chain(SECRETS).copied().collect::<Vec<_>>().join(", ")
                        ))
                    }
                };
            Ok(Pattern {
                name: n.to_string(),
                label: label.to_string(),
                regex: Regex::new(re).map_err(|e| format!("{n}: {e}"))?,
                valid,
                action,
            })
        })
        .collect()
}

/// A custom pattern (`pattern_type: regex`).
pub fn custom(name: &str, pattern: &str, action: Action) -> Result<Pattern, String> {
    let regex = Regex::new(pattern).map_err(|e| format!("not a valid regular expression: {e}"))?;
    let label: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    Ok(Pattern {
        name: name.to_string(),
        label,
        regex,
        valid: None,
        action,
    })
}

const PII: &[&str] = &[
    "email",
    "phone",
    "credit_card",
    "iban",
    "us_ssn",
    "ip_address",
];
const SECRETS: &[&str] = &[
    "aws_access_key",
    "aws_secret_key",
    "github_token",
    "slack_token",
    "api_key",
    "private_key",
    "jwt",
];

/// Not glued to more digits or word characters on either side.
fn standalone(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(|c| c.is_alphanumeric() || c == '+' || c == '-')
        && !after.is_some_and(|c| c.is_alphanumeric())
}

fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

fn phone_ok(text: &str, m: &str, start: usize, end: usize) -> bool {
    let n = digits(m).len();
    (10..=15).contains(&n) && standalone(text, start, end) && !card_ok(text, m, start, end)
}

fn card_ok(text: &str, m: &str, start: usize, end: usize) -> bool {
    let d = digits(m);
    if !(13..=19).contains(&d.len()) || !standalone(text, start, end) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn iban_ok(_: &str, m: &str, _: usize, _: usize) -> bool {
    let s: String = m.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&s.len()) {
        return false;
    }
    let rearranged = format!("{}{}", &s[4..], &s[..4]);
    let mut rem: u64 = 0;
    for c in rearranged.chars() {
        let v = match c.to_digit(36) {
            Some(v) => v as u64,
            None => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn ssn_ok(text: &str, m: &str, start: usize, end: usize) -> bool {
    let area = &m[0..3];
    let group = &m[4..6];
    let serial = &m[7..11];
    area != "000"
        && area != "666"
        && !area.starts_with('9')
        && group != "00"
        && serial != "0000"
        && standalone(text, start, end)
}

fn ipv6_ok(_: &str, m: &str, _: usize, _: usize) -> bool {
    m.matches(':').count() >= 2 && m.parse::<Ipv6Addr>().is_ok() && m != "::"
}

fn ip_ok(text: &str, m: &str, start: usize, end: usize) -> bool {
    !m.contains(':') || ipv6_ok(text, m, start, end)
}

#[cfg(test)]
mod tests;
