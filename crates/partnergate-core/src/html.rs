//! The one home for the HTML the gateway writes itself: escaping and the self-contained page
//! shell shared by the DPO's audit report, the Art. 30 register, the participant summary and
//! the access export.
//!
//! Every page is one file that opens offline and prints: its CSS is inline and it loads
//! nothing, so the shell has no place for links or scripts. Whatever comes from data (record
//! fields, agreement text, names) goes through [`escape`] or [`push_escaped`]; only literal
//! markup written in the code is pushed as it is.

/// Escapes text for HTML element content and for quoted attribute values: `&`, `<`, `>`, `"`
/// and `'` become character references.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_escaped(&mut out, text);
    out
}

/// Appends `text` escaped as by [`escape`], without an intermediate string; for pages built
/// by appending to one buffer.
pub fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            // `'` too, so escaped text is also safe inside single-quoted attributes.
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// What a page says about itself in its `<head>`: the shell around a page's body.
#[derive(Debug, Clone, Copy)]
pub struct Shell<'a> {
    /// The document language (`lang` of `<html>`), e.g. `"en"` or `"nl"`.
    pub lang: &'a str,
    /// The title as plain text; the shell escapes it.
    pub title: &'a str,
    /// The whole style sheet, inlined in one `<style>` element.
    pub css: &'a str,
}

impl Shell<'_> {
    /// Appends everything before the body's content: doctype, `<html lang>`, the head (charset,
    /// viewport, title, style) and the opening `<body>` tag.
    pub fn open(&self, out: &mut String) {
        out.push_str("<!DOCTYPE html>\n<html lang=\"");
        push_escaped(out, self.lang);
        out.push_str("\">\n<head>\n<meta charset=\"utf-8\">\n");
        out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        out.push_str("<title>");
        push_escaped(out, self.title);
        out.push_str("</title>\n<style>\n");
        out.push_str(self.css.trim_matches('\n'));
        out.push_str("\n</style>\n</head>\n<body>\n");
    }

    /// Appends what closes a page opened with [`Shell::open`].
    pub fn close(out: &mut String) {
        out.push_str("</body>\n</html>\n");
    }

    /// The whole page around `body`, which must already be markup (escaped where it holds data).
    pub fn page(&self, body: &str) -> String {
        let mut out = String::with_capacity(body.len() + self.css.len() + 256);
        self.open(&mut out);
        out.push_str(body);
        Self::close(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_five_special_characters() {
        assert_eq!(
            escape(r#"<a href="x">Tom & Jerry's</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;"
        );
        assert_eq!(escape("plain text, é ü –"), "plain text, é ü –");
        let mut out = String::from("kept ");
        push_escaped(&mut out, "<&>");
        assert_eq!(out, "kept &lt;&amp;&gt;");
    }

    #[test]
    fn a_page_has_one_title_the_language_and_the_body() {
        let shell = Shell {
            lang: "nl",
            title: "Uw gegevens <script>",
            css: "\nbody { color: #222; }\n",
        };
        let page = shell.page("<p>inhoud</p>\n");
        assert!(page.starts_with("<!DOCTYPE html>\n<html lang=\"nl\">"));
        assert_eq!(page.matches("<title>").count(), 1);
        assert_eq!(page.matches("</title>").count(), 1);
        assert!(page.contains("<title>Uw gegevens &lt;script&gt;</title>"));
        assert!(!page.contains("<script"));
        assert_eq!(page.matches("<html").count(), 1);
        assert!(page.contains("<style>\nbody { color: #222; }\n</style>"));
        assert!(page.contains("<body>\n<p>inhoud</p>\n</body>\n</html>\n"));
    }

    #[test]
    fn open_and_close_make_the_same_page() {
        let shell = Shell {
            lang: "en",
            title: "T",
            css: "",
        };
        let mut out = String::new();
        shell.open(&mut out);
        out.push_str("<p>x</p>");
        Shell::close(&mut out);
        assert_eq!(out, shell.page("<p>x</p>"));
        assert!(out.contains("<html lang=\"en\">"));
    }
}
