//! Answers rendered as Markdown (pulldown-cmark), safely: raw HTML in the
//! text is shown as text, and links keep only http(s) and mailto targets.

use pulldown_cmark::{html, Event, Options, Parser, Tag};

/// Markdown to HTML that may be put in the page as is.
pub fn to_safe_html(markdown: &str) -> String {
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    opts.insert(Options::ENABLE_TASKLISTS);
    let events = Parser::new_ext(markdown, opts).map(|e| match e {
        // Raw HTML is text here.
        Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_url(&dest_url) => Event::Start(Tag::Link {
            link_type,
            dest_url: "#".into(),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_url(&dest_url) => Event::Start(Tag::Image {
            link_type,
            dest_url: "#".into(),
            title,
            id,
        }),
        other => other,
    });
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, events);
    out
}

fn safe_url(url: &str) -> bool {
    let u = url.trim().to_ascii_lowercase();
    u.starts_with("https://")
        || u.starts_with("http://")
        || u.starts_with("mailto:")
        || u.starts_with('#')
        || u.starts_with('/')
        || !u.contains(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_blocks_and_emphasis_render() {
        let h = to_safe_html("**Hi**\n\n```rust\nfn main() {}\n```\n");
        assert!(h.contains("<strong>Hi</strong>"), "{h}");
        assert!(
            h.contains(r#"<code class="language-rust">fn main() {}"#),
            "{h}"
        );
    }

    #[test]
    fn html_and_script_links_are_neutralised() {
        let h = to_safe_html(
            "<script>alert(1)</script> <img src=x onerror=alert(1)>\n\n[x](javascript:alert(1))",
        );
        assert!(!h.contains("<script>") && !h.contains("<img"), "{h}");
        assert!(h.contains("&lt;script&gt;"), "{h}");
        assert!(!h.contains("javascript:"), "{h}");
        assert!(h.contains(r##"<a href="#">x</a>"##), "{h}");
    }
}
