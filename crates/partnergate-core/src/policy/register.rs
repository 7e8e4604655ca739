//! `partnergate policy register`: the record of processing activities per controller
//! (GDPR Art. 30) and the plain-language summary of the joint-controller arrangement for
//! participants (Art. 26(2)), in Dutch and English, as Markdown and self-contained HTML.
//!
//! Each document is built once as a small block tree and rendered twice, so the Markdown and
//! the HTML always say the same thing; all agreement text is escaped for its target.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::PolicyError;
use super::agreement::{Agreement, Class, Partner, RoleLevel};
use super::compile::{Rule, rules};
use crate::html::{Shell, escape as esc};

/// One generated register file: name relative to the output directory, and its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterFile {
    /// File name, e.g. `register.md`.
    pub name: String,
    /// File contents.
    pub contents: String,
}

/// Generates the register files in memory: `register.md`/`.html` (Art. 30, one section per
/// controller) and `summary.nl.md`/`.html`, `summary.en.md`/`.html` (Art. 26(2)).
pub fn register_files(agreement: &Agreement) -> Vec<RegisterFile> {
    let mut out = Vec::new();
    let docs = [
        ("register", "en", art30(agreement)),
        ("summary.nl", "nl", summary(agreement, Lang::Nl)),
        ("summary.en", "en", summary(agreement, Lang::En)),
    ];
    for (stem, lang, doc) in docs {
        out.push(RegisterFile {
            name: format!("{stem}.md"),
            contents: doc.markdown(),
        });
        out.push(RegisterFile {
            name: format!("{stem}.html"),
            contents: doc.html(lang),
        });
    }
    out
}

/// Writes the register files into `out_dir` (created if missing); returns their paths.
pub fn register(agreement: &Agreement, out_dir: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    std::fs::create_dir_all(out_dir).map_err(|e| PolicyError::Io {
        path: out_dir.display().to_string(),
        source: e,
    })?;
    let mut paths = Vec::new();
    for f in register_files(agreement) {
        let path = out_dir.join(&f.name);
        std::fs::write(&path, &f.contents).map_err(|e| PolicyError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        paths.push(path);
    }
    Ok(paths)
}

// ---------------------------------------------------------------------------------------
// A tiny document model rendered to Markdown and HTML.

enum Block {
    H(u8, String),
    P(String),
    List(Vec<String>),
    Table(Vec<String>, Vec<Vec<String>>),
}

struct Doc {
    title: String,
    blocks: Vec<Block>,
}

impl Doc {
    fn new(title: impl Into<String>) -> Doc {
        Doc {
            title: title.into(),
            blocks: Vec::new(),
        }
    }
    fn h(&mut self, level: u8, t: impl Into<String>) {
        self.blocks.push(Block::H(level, t.into()));
    }
    fn p(&mut self, t: impl Into<String>) {
        self.blocks.push(Block::P(t.into()));
    }
    fn list(&mut self, items: Vec<String>) {
        if !items.is_empty() {
            self.blocks.push(Block::List(items));
        }
    }
    fn table(&mut self, header: &[&str], rows: Vec<Vec<String>>) {
        self.blocks.push(Block::Table(
            header.iter().map(|s| s.to_string()).collect(),
            rows,
        ));
    }

    fn markdown(&self) -> String {
        let mut s = format!("# {}\n\n", md(&self.title));
        for b in &self.blocks {
            match b {
                Block::H(l, t) => s.push_str(&format!("{} {}\n\n", "#".repeat(*l as usize), md(t))),
                Block::P(t) => s.push_str(&format!("{}\n\n", md(t))),
                Block::List(items) => {
                    for i in items {
                        s.push_str(&format!("- {}\n", md(i)));
                    }
                    s.push('\n');
                }
                Block::Table(h, rows) => {
                    let row = |cells: &[String]| {
                        format!(
                            "| {} |\n",
                            cells
                                .iter()
                                .map(|c| md_cell(c))
                                .collect::<Vec<_>>()
                                .join(" | ")
                        )
                    };
                    s.push_str(&row(h));
                    s.push_str(&format!("|{}\n", "---|".repeat(h.len())));
                    for r in rows {
                        s.push_str(&row(r));
                    }
                    s.push('\n');
                }
            }
        }
        s
    }

    fn html(&self, lang: &str) -> String {
        let mut s = String::new();
        Shell {
            lang,
            title: &self.title,
            css: CSS,
        }
        .open(&mut s);
        s.push_str(&format!("<main>\n<h1>{}</h1>\n", esc(&self.title)));
        for b in &self.blocks {
            match b {
                Block::H(l, t) => s.push_str(&format!("<h{l}>{}</h{l}>\n", esc(t))),
                Block::P(t) => s.push_str(&format!("<p>{}</p>\n", esc(t))),
                Block::List(items) => {
                    s.push_str("<ul>\n");
                    for i in items {
                        s.push_str(&format!("<li>{}</li>\n", esc(i)));
                    }
                    s.push_str("</ul>\n");
                }
                Block::Table(h, rows) => {
                    s.push_str("<table>\n<thead><tr>");
                    for c in h {
                        s.push_str(&format!("<th>{}</th>", esc(c)));
                    }
                    s.push_str("</tr></thead>\n<tbody>\n");
                    for r in rows {
                        s.push_str("<tr>");
                        for c in r {
                            s.push_str(&format!("<td>{}</td>", esc(c)));
                        }
                        s.push_str("</tr>\n");
                    }
                    s.push_str("</tbody>\n</table>\n");
                }
            }
        }
        s.push_str("</main>\n");
        Shell::close(&mut s);
        s
    }
}

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;line-height:1.5;color:#1b1b1b;background:#fff;margin:0}
main{max-width:60rem;margin:0 auto;padding:1.5rem}
h1{font-size:1.8rem;border-bottom:2px solid #0b5394;padding-bottom:.3rem}
h2{font-size:1.4rem;margin-top:2rem;color:#0b5394}
h3{font-size:1.1rem;margin-top:1.5rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}
th,td{border:1px solid #ccc;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#eef3f8}
tr:nth-child(even) td{background:#fafafa}
";

/// Escapes characters Markdown would interpret (or that would let text inject HTML).
fn md(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\`*_[]<>#|".contains(c) {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

fn md_cell(s: &str) -> String {
    md(s).replace('\n', " ")
}

// ---------------------------------------------------------------------------------------
// Content.

fn class_label(c: Class) -> &'static str {
    match c {
        Class::Ordinary => "ordinary",
        Class::Sensitive => "sensitive",
        Class::Art9 => "special category (GDPR Art. 9)",
        Class::Art10 => "criminal-law data (GDPR Art. 10)",
    }
}

fn kbo(p: &Partner) -> String {
    p.kbo
        .as_ref()
        .map(|k| k.value.clone())
        .unwrap_or_else(|| "not listed".into())
}

/// Read rules (role, purpose, category, condition) of the agreement.
fn read_rules(a: &Agreement) -> Vec<Rule> {
    rules(a)
        .into_iter()
        .filter(|r| r.action == "read" && a.category(&r.object).is_some())
        .collect()
}

/// Partners whose clients may hold `role`.
fn holders(a: &Agreement, role: &str) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for c in &a.clients {
        if c.roles.iter().any(|r| r.value == role)
            && let Some(p) = a.partner(&c.partner)
            && !v.contains(&p.name)
        {
            v.push(p.name.clone());
        }
    }
    v
}

fn art30(a: &Agreement) -> Doc {
    let mut d = Doc::new(format!(
        "Records of processing activities (GDPR Art. 30): {}",
        a.meta.name
    ));
    d.p(format!(
        "Generated from policies/agreement.toml (SHA-256 {}). Joint controllers under GDPR Art. 26 for the programme {}. Promotor: {}.",
        a.sha256(),
        a.meta.programme,
        a.partner(&a.meta.promotor)
            .map(|p| p.name.as_str())
            .unwrap_or(&a.meta.promotor)
    ));
    let controllers: Vec<&Partner> = a.partners.iter().filter(|p| p.is_controller()).collect();
    let processors: Vec<&Partner> = a.partners.iter().filter(|p| !p.is_controller()).collect();
    d.list(
        controllers
            .iter()
            .map(|p| format!("{} (KBO {})", p.name, kbo(p)))
            .collect(),
    );

    // Shared facts, repeated in every controller's section so each section stands alone.
    let recipients: Vec<Vec<String>> = {
        let reads = read_rules(a);
        let mut rows = Vec::new();
        for c in &a.categories {
            let mut lines: Vec<String> = Vec::new();
            for r in reads.iter().filter(|r| r.object == c.id.value) {
                let cond = r
                    .condition
                    .strip_prefix("consent:")
                    .map(|s| format!(", only with consent `{s}`"))
                    .unwrap_or_default();
                lines.push(format!(
                    "{} for {}{} ({})",
                    r.role,
                    r.purpose,
                    cond,
                    holders(a, &r.role).join(", ")
                ));
            }
            if lines.is_empty() {
                lines.push("nobody (only the participant's own data-subject requests)".into());
            }
            rows.push(vec![c.id.value.clone(), lines.join("; ")]);
        }
        rows
    };

    for p in &controllers {
        d.h(2, format!("Controller: {}", p.name));
        let kind = a
            .kinds
            .iter()
            .find(|k| k.id.value == p.kind.value)
            .map(|k| k.description.clone())
            .unwrap_or_else(|| p.kind.value.clone());
        d.list(vec![
            format!("Name: {}", p.name),
            format!("Enterprise number (KBO): {}", kbo(p)),
            format!("Kind: {kind}"),
            format!(
                "Joint controllers: {}",
                controllers
                    .iter()
                    .filter(|o| o.id.value != p.id.value)
                    .map(|o| o.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!(
                "Data-protection officer (contact point for participants): {}, {}, {}",
                a.meta.dpo_name, a.meta.dpo_email, a.meta.dpo_address
            ),
        ]);

        d.h(3, "Purposes and legal basis");
        d.table(
            &["Purpose", "Description", "Legal basis for this controller"],
            a.purposes
                .iter()
                .map(|pu| {
                    vec![
                        pu.id.value.clone(),
                        pu.description.clone(),
                        pu.legal_basis
                            .get(p.kind.as_str())
                            .map(|b| b.value.label_en().to_string())
                            .unwrap_or_else(|| "none (does not process for this purpose)".into()),
                    ]
                })
                .collect(),
        );

        d.h(3, "Categories of data subjects");
        d.list(vec![
            "Participants of the partnership's trajectories (people in a complex situation guided towards work and participation).".into(),
            "Staff of the partners, as opaque acting-user ids in the access log.".into(),
        ]);

        d.h(3, "Categories of personal data");
        d.table(
            &["Category", "Class", "Fields", "Description"],
            a.categories
                .iter()
                .map(|c| {
                    vec![
                        c.id.value.clone(),
                        class_label(c.class).into(),
                        c.fields
                            .iter()
                            .map(|f| format!("{}.{}", c.id.value, f.name.value))
                            .collect::<Vec<_>>()
                            .join(", "),
                        c.description.clone(),
                    ]
                })
                .collect(),
        );

        let special: Vec<String> = a
            .categories
            .iter()
            .filter_map(|c| {
                c.special_basis
                    .as_ref()
                    .map(|b| format!("{} ({}): {b}", c.id.value, class_label(c.class)))
            })
            .collect();
        if !special.is_empty() {
            d.h(
                3,
                "Grounds for special categories (GDPR Art. 9(2) and Art. 10)",
            );
            d.list(special);
        }

        d.h(3, "Roles this controller's systems may hold");
        let mut roles: BTreeSet<&str> = BTreeSet::new();
        for c in a.clients.iter().filter(|c| c.partner.value == p.id.value) {
            roles.extend(c.roles.iter().map(|r| r.as_str()));
        }
        d.list(
            a.roles
                .iter()
                .filter(|r| roles.contains(r.id.as_str()))
                .map(|r| format!("{}: {}", r.id.value, r.description))
                .collect(),
        );

        d.h(
            3,
            "Recipients (which roles of which partners see which categories)",
        );
        d.table(
            &["Category", "Seen by (role for purpose, partners)"],
            recipients.clone(),
        );
        d.p(format!(
            "Reports: the ESF+ common indicators per gender and the partners' inflow and outflow are computed by the gateway (GET /v1/reports/esf, `partnergate report esf`) for the roles granted reports:read, purpose esf_reporting, and reported to the managing authority (Europa WSE) as aggregates only: cells below {} participants (below {} for Art. 9 indicators) are suppressed, with enough further cells that none can be worked out from the totals. Each report is audited as an aggregate access without participant ids. No transfers outside the European Economic Area.",
            a.reports.min_cell, a.reports.min_cell_special
        ));

        d.h(3, "Safeguards against widening one's own access");
        d.list(access_safeguards(a));

        d.h(3, "Retention");
        d.table(
            &["Category", "Kept", "Blocks erasure", "Reason"],
            a.retention
                .iter()
                .map(|r| {
                    vec![
                        r.category.value.clone(),
                        r.describe(&a.meta),
                        if r.blocks_erasure { "yes" } else { "no" }.into(),
                        r.reason.clone(),
                    ]
                })
                .collect(),
        );

        d.h(3, "Technical and organisational security measures");
        d.list(a.meta.security_measures.clone());
    }

    if !processors.is_empty() {
        d.h(2, "Processors (subcontractors)");
        d.list(
            processors
                .iter()
                .map(|p| format!("{} (KBO {}): processes on behalf of the joint controllers, not a controller itself.", p.name, kbo(p)))
                .collect(),
        );
    }
    d
}

/// How the agreement keeps partners from widening their own access: named self-assignments,
/// one-holder roles and consents another role must record.
fn access_safeguards(a: &Agreement) -> Vec<String> {
    let mut out = vec!["A partner cannot give itself a role that would show it more than its current roles in the case, unless listed here.".to_string()];
    for g in &a.grants {
        for r in &g.self_assign {
            out.push(format!(
                "Allowed self-assignment: {} may make its own organisation {} (purpose {}).",
                g.roles
                    .iter()
                    .map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                r.value,
                g.purpose.value
            ));
        }
    }
    for r in a.roles.iter().filter(|r| r.one_per_case) {
        out.push(format!(
            "At most one partner is {} in a case; a change is an explicit handover, recorded in the access log.",
            r.id.value
        ));
    }
    for s in a.scopes.iter().filter(|s| s.independent_recorder) {
        out.push(format!(
            "Consent `{}` must be recorded by a role whose own access it does not widen.",
            s.id.value
        ));
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lang {
    Nl,
    En,
}

fn summary(a: &Agreement, lang: Lang) -> Doc {
    let nl = lang == Lang::Nl;
    let t = |n: &str, e: &str| if nl { n.to_string() } else { e.to_string() };
    let mut d = Doc::new(if nl {
        format!("Hoe {} met je gegevens omgaat", a.meta.name)
    } else {
        format!("How {} handles your data", a.meta.name)
    });

    d.p(t(
        "Verschillende organisaties begeleiden je samen naar werk of een andere stap vooruit. Ze werken samen als gezamenlijke verwerkingsverantwoordelijken (AVG art. 26). Dit is een samenvatting van de afspraken die ze daarover maakten.",
        "Several organisations work together to guide you towards work or another step forward. They are joint controllers of your data (GDPR Art. 26). This is a summary of what they agreed.",
    ));

    d.h(2, t("Wie zijn de partners?", "Who are the partners?"));
    let promotor = a
        .partner(&a.meta.promotor)
        .map(|p| p.name.clone())
        .unwrap_or_else(|| a.meta.promotor.value.clone());
    d.p(if nl {
        format!("{promotor} is promotor: eindverantwoordelijk voor het project en het aanspreekpunt voor je vragen.")
    } else {
        format!("{promotor} is the promotor: finally responsible for the project and your point of contact.")
    });
    d.list(
        a.partners
            .iter()
            .map(|p| {
                if p.is_controller() {
                    p.name.clone()
                } else if nl {
                    format!("{} (werkt in opdracht van de partners)", p.name)
                } else {
                    format!("{} (works on behalf of the partners)", p.name)
                }
            })
            .collect(),
    );

    d.h(2, t("Welke gegevens noteren we?", "What do we record?"));
    d.list(
        a.categories
            .iter()
            .map(|c| {
                if nl {
                    c.description_nl.clone()
                } else {
                    c.description.clone()
                }
            })
            .collect(),
    );
    d.p(t(
        "Alles wordt versleuteld bewaard. Elke partner ziet je onder een eigen schuilnaam, en elke inzage wordt gelogd.",
        "Everything is stored encrypted. Each partner knows you under its own pseudonym, and every access is logged.",
    ));

    d.h(2, t("Wie ziet wat, en waarom?", "Who sees what, and why?"));
    d.p(t(
        "Niemand ziet meer dan zijn rol nodig heeft, en alleen voor een vast doel:",
        "Nobody sees more than their role needs, and only for a stated purpose:",
    ));
    let reads = read_rules(a);
    // Short labels: the first clause of the description ("Who you are: ..." → "Who you are").
    let short = |text: &str| -> String {
        text.split([':', ';', '('])
            .next()
            .unwrap_or(text)
            .trim()
            .trim_end_matches('.')
            .to_string()
    };
    let cat_label = |id: &str| -> String {
        a.category(id)
            .map(|c| {
                short(if nl {
                    &c.description_nl
                } else {
                    &c.description
                })
            })
            .unwrap_or_else(|| id.to_string())
    };
    let mut rows = Vec::new();
    for role in &a.roles {
        let who = if nl {
            role.description_nl.clone()
        } else {
            role.description.clone()
        };
        let mut any = false;
        for purpose in &a.purposes {
            let mine: Vec<&Rule> = reads
                .iter()
                .filter(|r| r.role == role.id.value && r.purpose == purpose.id.value)
                .collect();
            let mut seen: Vec<String> = Vec::new();
            for c in &a.categories {
                let conds: Vec<&str> = mine
                    .iter()
                    .filter(|r| r.object == c.id.value)
                    .map(|r| r.condition.as_str())
                    .collect();
                if conds.is_empty() {
                    continue;
                }
                seen.push(match (conds.contains(&"always"), nl) {
                    (true, _) => cat_label(&c.id),
                    (false, true) => format!("{} (alleen met je toestemming)", cat_label(&c.id)),
                    (false, false) => format!("{} (only with your consent)", cat_label(&c.id)),
                });
            }
            if !seen.is_empty() {
                any = true;
                rows.push(vec![
                    who.clone(),
                    short(if nl {
                        &purpose.description_nl
                    } else {
                        &purpose.description
                    }),
                    seen.join("; "),
                ]);
            }
        }
        if !any {
            let what = match (role.level, nl) {
                (RoleLevel::Client, true) => {
                    "Geen gegevens over jou persoonlijk: alleen cijfers, het toegangslogboek of je eigen vragen over je gegevens"
                }
                (RoleLevel::Client, false) => {
                    "Nothing about you personally: only figures, the access log or your own requests about your data"
                }
                (RoleLevel::Case, true) => "Alleen of er al een traject loopt",
                (RoleLevel::Case, false) => "Only whether a trajectory is already running",
            };
            rows.push(vec![who, "-".into(), what.into()]);
        }
    }
    d.table(
        &if nl {
            ["Wie", "Waarvoor", "Ziet"]
        } else {
            ["Who", "What for", "Sees"]
        },
        rows,
    );

    d.h(2, t("Jouw keuzes", "Your choices"));
    d.p(t(
        "Voor sommige dingen vragen we eerst je toestemming. Je kan die altijd weer intrekken, zonder gevolgen voor je begeleiding:",
        "For some things we first ask your consent. You can withdraw it at any time, without consequences for your guidance:",
    ));
    d.list(
        a.scopes
            .iter()
            .map(|s| {
                if nl {
                    s.description_nl.clone()
                } else {
                    s.description.clone()
                }
            })
            .collect(),
    );

    d.h(
        2,
        t(
            "Hoe lang bewaren we je gegevens?",
            "How long do we keep your data?",
        ),
    );
    d.list(
        a.retention
            .iter()
            .map(|r| {
                let when = if nl {
                    r.describe_nl(&a.meta)
                } else {
                    r.describe(&a.meta)
                };
                format!("{}: {when}", cat_label(&r.category))
            })
            .collect(),
    );

    d.h(2, t("Jouw rechten", "Your rights"));
    d.list(if nl {
        vec![
            "Inzage: je mag vragen welke gegevens we over je hebben en wie ze zag.".into(),
            "Verbetering: foute gegevens laten we verbeteren, ook bij elke partner die ze kreeg.".into(),
            "Wissen: je mag vragen je gegevens te wissen. De ESF-gegevens moeten we wel bewaren zolang de wet dat vraagt; we zeggen je dan waarom.".into(),
            "Beperking en bezwaar: je mag vragen het gebruik te beperken of bezwaar maken.".into(),
            "Overdracht: je mag je gegevens in een gangbaar formaat krijgen.".into(),
            "Toestemming intrekken: altijd, voor elke toestemming hierboven.".into(),
            "We antwoorden binnen een maand (uitzonderlijk twee maanden langer; dan laten we het je weten).".into(),
            format!("Klacht: bij de {}.", a.meta.authority),
        ]
    } else {
        vec![
            "Access: you may ask which data we hold about you and who saw it.".into(),
            "Rectification: we correct wrong data, also at every partner that received it.".into(),
            "Erasure: you may ask us to erase your data. ESF data must be kept as long as the law requires; we then tell you why.".into(),
            "Restriction and objection: you may ask to restrict the use or object to it.".into(),
            "Portability: you may receive your data in a common format.".into(),
            "Withdrawing consent: at any time, for each consent above.".into(),
            "We answer within one month (exceptionally two more months; we will tell you).".into(),
            format!("Complaints: to the {}.", a.meta.authority),
        ]
    });

    d.h(2, t("Contact", "Contact"));
    d.p(if nl {
        format!(
            "Met al je vragen over je gegevens kan je bij elke partner terecht, of rechtstreeks bij de functionaris voor gegevensbescherming: {}, {}.",
            a.meta.dpo_email, a.meta.dpo_address
        )
    } else {
        format!(
            "You can ask any partner about your data, or contact the data-protection officer directly: {}, {}.",
            a.meta.dpo_email, a.meta.dpo_address
        )
    });
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEMO: &str = include_str!("../../../../policies/agreement.toml");

    fn files() -> Vec<RegisterFile> {
        register_files(&Agreement::from_str(DEMO).unwrap())
    }

    fn get<'a>(files: &'a [RegisterFile], name: &str) -> &'a str {
        &files.iter().find(|f| f.name == name).unwrap().contents
    }

    #[test]
    fn register_has_one_section_per_controller_and_none_for_the_subcontractor() {
        let f = files();
        let md = get(&f, "register.md");
        for name in [
            "Stad Gent",
            "OCMW Gent",
            "CAW Oost-Vlaanderen",
            "JES vzw",
            "Voluit vzw",
        ] {
            assert!(md.contains(&format!("## Controller: {name}")), "{name}");
        }
        assert!(!md.contains("## Controller: Amal vzw"));
        assert!(md.contains("## Processors (subcontractors)"));
        assert!(md.contains("0207.451.227"));
        assert!(md.contains("AES-256-GCM"));
        assert!(md.contains("120 months") || md.contains("10 years"));
    }

    #[test]
    fn summaries_exist_in_dutch_and_english_with_the_dpo_contact() {
        let f = files();
        let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "register.md",
                "register.html",
                "summary.nl.md",
                "summary.nl.html",
                "summary.en.md",
                "summary.en.html"
            ]
        );
        let nl = get(&f, "summary.nl.md");
        assert!(nl.contains("Jouw rechten") && nl.contains("dpo@jobteam-gent.example"));
        assert!(nl.contains("alleen met je toestemming"));
        let en = get(&f, "summary.en.html");
        assert!(en.starts_with("<!DOCTYPE html>") && en.contains("<html lang=\"en\">"));
        assert!(en.contains("Your rights") && en.contains("dpo@jobteam-gent.example"));
        assert!(get(&f, "summary.nl.html").contains("<html lang=\"nl\">"));
    }

    #[test]
    fn agreement_text_is_html_escaped() {
        let evil = DEMO.replace(
            "name = \"Intro vzw\"",
            "name = \"Intro <script>alert('x')</script> & co\"",
        );
        let f = register_files(&Agreement::from_str(&evil).unwrap());
        for file in f.iter().filter(|f| f.name.ends_with(".html")) {
            assert!(!file.contents.contains("<script>"), "{}", file.name);
            assert!(
                file.contents
                    .contains("Intro &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co")
            );
        }
        for file in f.iter().filter(|f| f.name.ends_with(".md")) {
            assert!(!file.contents.contains("<script>"), "{}", file.name);
        }
    }

    #[test]
    fn register_writes_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let paths = register(&Agreement::from_str(DEMO).unwrap(), &out).unwrap();
        assert_eq!(paths.len(), 6);
        assert!(out.join("register.html").exists());
    }
}
