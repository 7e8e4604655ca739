//! A realistic synthetic caseload for the demo, tests and benchmarks, reproducible from a seed.
//!
//! The participants look like a Ghent partnership's caseload (Flemish names next to Turkish,
//! Moroccan, Bulgarian, Slovak, Afghan, Syrian and Eritrean ones; Ghent streets; valid INSZ
//! numbers; Dutch case texts) but are invented: no real person is described. The field names and
//! enum values are the agreement's, see the module tests for the allowed values.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};
use time::{Date, Month};

use partnergate_core::insz::Insz;

/// One invented participant: field values by field name, the case's involvements
/// (`(partner id, role)`, the first is the registering toeleider), consent scopes and case notes.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticParticipant {
    /// Field values, e.g. `"identity.given_name" => "An"`.
    pub fields: BTreeMap<String, Value>,
    /// `(partner id, role)`; the first entry is the toeleider who registers the participant.
    pub involvements: Vec<(String, String)>,
    /// Consent scopes the participant gave.
    pub consents: Vec<String>,
    /// Case-note texts (0 to 3).
    pub notes: Vec<String>,
}

/// Every partner id the synthetic caseload uses.
pub const PARTNERS: &[&str] = &[
    "stad-gent",
    "ocmw-gent",
    "vdab",
    "caw-oost-vlaanderen",
    "jobandco",
    "intro",
    "jes",
    "voluit",
    "amal",
];

/// Every role the synthetic caseload uses.
pub const ROLES: &[&str] = &[
    "toeleider",
    "dossierbeheerder",
    "trajectgezel",
    "co_coach",
    "brugfiguur",
    "spoc_vdab",
];

/// Every consent scope the synthetic caseload uses.
pub const CONSENT_SCOPES: &[&str] = &[
    "health_sharing",
    "caw_professional_secrecy",
    "group_case_discussion",
];

/// The reference "today" of the caseload: fixed, so a seed always gives the same data.
const REFERENCE_DATE: Date = time::macros::date!(2026 - 11 - 01);

/// splitmix64: tiny, fast, good enough for test data (not for anything secret).
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (multiply-high; the bias is negligible for these small ranges).
    fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as usize) as i64
    }

    /// True with probability `percent`%.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Picks from `(item, weight)` pairs.
    fn weighted<'a, T>(&mut self, items: &'a [(T, usize)]) -> &'a T {
        let total: usize = items.iter().map(|(_, w)| w).sum();
        let mut r = self.below(total);
        for (item, w) in items {
            if r < *w {
                return item;
            }
            r -= w;
        }
        &items[items.len() - 1].0
    }
}

/// A name and language background; family names are `(male form, female form)`.
struct Background {
    weight: usize,
    female: &'static [&'static str],
    male: &'static [&'static str],
    family: &'static [(&'static str, &'static str)],
    languages: &'static [&'static str],
    /// Nationalities with weights (many with a migration background are Belgian).
    nationalities: &'static [(&'static str, usize)],
    flemish: bool,
    minority_percent: usize,
    refugee: bool,
}

/// Same family name for both genders.
macro_rules! fam {
    ($($n:literal),* $(,)?) => { &[$(($n, $n)),*] };
}

const BACKGROUNDS: &[Background] = &[
    Background {
        weight: 36,
        female: &[
            "An", "Els", "Katrien", "Sofie", "Lotte", "Nathalie", "Inge", "Hilde", "Sarah",
            "Kelly", "Joke", "Lien", "Elke", "Griet", "Marijke", "Jana", "Femke",
        ],
        male: &[
            "Tom", "Pieter", "Kevin", "Bart", "Dirk", "Wouter", "Jens", "Stijn", "Geert", "Koen",
            "Steven", "Brecht", "Thomas", "Jonas", "Nico", "Sander", "Dries",
        ],
        family: fam![
            "Peeters",
            "Janssens",
            "De Smet",
            "Claeys",
            "Vermeulen",
            "De Vos",
            "Van den Broeck",
            "Maes",
            "Verhaeghe",
            "De Clercq",
            "Van Damme",
            "Goethals",
            "De Backer",
            "Vandenberghe",
            "Martens",
            "Baert",
            "Van Hecke",
            "Coppens",
            "De Wilde",
            "Verstraete",
        ],
        languages: &["nl"],
        nationalities: &[("BE", 1)],
        flemish: true,
        minority_percent: 2,
        refugee: false,
    },
    Background {
        weight: 14,
        female: &[
            "Ayşe", "Fatma", "Elif", "Zeynep", "Emine", "Hatice", "Merve", "Büşra", "Esra",
        ],
        male: &[
            "Mehmet", "Mustafa", "Ahmet", "Hüseyin", "Emre", "Burak", "Yusuf", "Murat", "Kemal",
        ],
        family: fam![
            "Yılmaz", "Kaya", "Demir", "Çelik", "Şahin", "Yıldız", "Aydın", "Öztürk", "Arslan",
            "Doğan", "Kılıç", "Aksoy",
        ],
        languages: &["tr", "nl"],
        nationalities: &[("BE", 7), ("TR", 3)],
        flemish: false,
        minority_percent: 15,
        refugee: false,
    },
    Background {
        weight: 11,
        female: &[
            "Fatima", "Khadija", "Salma", "Nadia", "Samira", "Imane", "Hanane", "Loubna", "Yasmina",
        ],
        male: &[
            "Mohamed", "Youssef", "Karim", "Rachid", "Said", "Hamza", "Bilal", "Anass", "Ayoub",
        ],
        family: fam![
            "El Amrani",
            "Benali",
            "Bouzid",
            "El Idrissi",
            "Chakir",
            "El Khattabi",
            "Ouali",
            "Boukhari",
            "Azzouzi",
            "El Hamdaoui",
        ],
        languages: &["ar", "nl", "ber"],
        nationalities: &[("BE", 7), ("MA", 3)],
        flemish: false,
        minority_percent: 15,
        refugee: false,
    },
    Background {
        weight: 11,
        female: &[
            "Ivanka",
            "Maria",
            "Elena",
            "Gergana",
            "Desislava",
            "Aylin",
            "Sevgi",
            "Nurten",
        ],
        male: &[
            "Ivan", "Georgi", "Dimitar", "Nikolay", "Hristo", "Ahmed", "Sali", "Orhan",
        ],
        family: &[
            ("Ivanov", "Ivanova"),
            ("Petrov", "Petrova"),
            ("Georgiev", "Georgieva"),
            ("Dimitrov", "Dimitrova"),
            ("Hasanov", "Hasanova"),
            ("Mehmedov", "Mehmedova"),
            ("Aliev", "Alieva"),
            ("Yusein", "Yusein"),
        ],
        languages: &["bg", "tr"],
        nationalities: &[("BG", 1)],
        flemish: false,
        minority_percent: 45,
        refugee: false,
    },
    Background {
        weight: 7,
        female: &["Jana", "Lucia", "Zuzana", "Monika", "Veronika", "Simona"],
        male: &["Peter", "Marek", "Milan", "Jozef", "Tomáš", "Ján"],
        family: &[
            ("Horváth", "Horváthová"),
            ("Balog", "Balogová"),
            ("Kováč", "Kováčová"),
            ("Lakatoš", "Lakatošová"),
            ("Oláh", "Oláhová"),
            ("Gaži", "Gažiová"),
        ],
        languages: &["sk", "rom"],
        nationalities: &[("SK", 1)],
        flemish: false,
        minority_percent: 75,
        refugee: false,
    },
    Background {
        weight: 7,
        female: &[
            "Zahra", "Mariam", "Fereshta", "Soraya", "Nilofar", "Shabnam",
        ],
        male: &[
            "Ahmad", "Mohammad", "Jawad", "Farid", "Hamid", "Rahim", "Sayed",
        ],
        family: fam![
            "Ahmadi", "Hakimi", "Rahimi", "Sultani", "Karimi", "Noori", "Popal", "Wardak",
        ],
        languages: &["prs", "ps"],
        nationalities: &[("AF", 9), ("BE", 1)],
        flemish: false,
        minority_percent: 10,
        refugee: true,
    },
    Background {
        weight: 7,
        female: &["Rasha", "Lina", "Hala", "Rania", "Nour", "Reem"],
        male: &[
            "Omar", "Khaled", "Ahmad", "Mahmoud", "Tarek", "Ali", "Feras",
        ],
        family: fam![
            "Al Hassan",
            "Haddad",
            "Al Khatib",
            "Darwish",
            "Hamdan",
            "Al Ahmad",
            "Sabbagh",
        ],
        languages: &["ar", "ku"],
        nationalities: &[("SY", 9), ("BE", 1)],
        flemish: false,
        minority_percent: 15,
        refugee: true,
    },
    Background {
        weight: 7,
        female: &["Senait", "Tsega", "Selam", "Hiwet", "Luwam", "Saba"],
        male: &["Yonas", "Tesfay", "Dawit", "Mehari", "Samuel", "Kibrom"],
        family: fam![
            "Tesfamariam",
            "Ghebremedhin",
            "Haile",
            "Berhane",
            "Woldu",
            "Kidane",
            "Tekle",
        ],
        languages: &["ti"],
        nationalities: &[("ER", 1)],
        flemish: false,
        minority_percent: 10,
        refugee: true,
    },
];

/// Ghent streets by postcode and municipality part.
const STREETS: &[(&str, &str, &[&str])] = &[
    (
        "9000",
        "Gent",
        &[
            "Sleepstraat",
            "Wondelgemstraat",
            "Bevrijdingslaan",
            "Phoenixstraat",
            "Rabotstraat",
            "Bomastraat",
            "Dampoortstraat",
            "Kazemattenstraat",
            "Jozef II-straat",
            "Meersenierstraat",
            "Sint-Salvatorstraat",
            "Haspelstraat",
            "Tolhuislaan",
            "Francisco Ferrerlaan",
            "Wolterslaan",
            "Jan Delvinlaan",
            "Sint-Pietersnieuwstraat",
            "Nieuwe Wandeling",
            "Doornzelestraat",
            "Gasmeterlaan",
        ],
    ),
    (
        "9040",
        "Sint-Amandsberg",
        &[
            "Antwerpsesteenweg",
            "Dendermondsesteenweg",
            "Victor Braeckmanlaan",
            "Land van Waaslaan",
            "Heiveldstraat",
        ],
    ),
    (
        "9050",
        "Ledeberg",
        &[
            "Brusselsesteenweg",
            "Hundelgemsesteenweg",
            "Ledebergplein",
            "Jules de Saint-Genoisstraat",
        ],
    ),
    (
        "9050",
        "Gentbrugge",
        &["Gentbruggeplein", "Brusselsesteenweg", "Jan Samijnstraat"],
    ),
];

const EMAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "hotmail.com",
    "outlook.com",
    "telenet.be",
    "proximus.be",
    "yahoo.com",
];

const REFERRAL_CHANNELS: &[&str] = &[
    "OCMW Gent, sociale dienst",
    "VDAB-bemiddelaar",
    "CAW onthaal",
    "Wijkgezondheidscentrum",
    "Buurtwerk Brugse Poort",
    "Straathoekwerk",
    "Eigen initiatief via vrienden",
    "Huis van het Nederlands",
    "Schoolopbouwwerk",
];

const GOALS: &[&str] = &[
    "Duurzaam werk vinden in de logistiek",
    "Nederlands verbeteren tot niveau A2 en daarna een opleiding starten",
    "Woonsituatie stabiliseren en schulden in kaart brengen",
    "Rijbewijs B halen om ploegenwerk mogelijk te maken",
    "Werkervaring opdoen via een werkplekleren-traject in de zorg",
    "Kinderopvang regelen zodat een opleiding haalbaar wordt",
    "Opleiding heftruckchauffeur afronden",
    "Zelfvertrouwen opbouwen via vrijwilligerswerk",
    "Diploma secundair onderwijs laten erkennen (NARIC)",
];

const NEXT_STEPS: &[&str] = &[
    "Afspraak met VDAB-consulent inplannen voor inschrijving",
    "Samen cv opmaken en eerste sollicitaties versturen",
    "Aanvraag kinderopvang bij het Centraal Aanmeldpunt opvolgen",
    "Doorverwijzing naar schuldbemiddeling OCMW opvolgen",
    "Proefdag bij sociale-economiebedrijf bevestigen",
    "Inschrijving taalles Huis van het Nederlands afronden",
    "Huisbezoek plannen met brugfiguur",
    "Evaluatiegesprek over werkplekleren na vier weken",
];

const HOUSING: &[&str] = &[
    "Huurt een kleine studio op de private markt, vocht en schimmel",
    "Op wachtlijst sociale woning, voorlopig bij familie ingetrokken",
    "Sociale woning sinds vorig jaar, stabiel",
    "Dreigende uithuiszetting door huurachterstand",
    "Woont in bij ouders, wil zelfstandig wonen",
];

const INCOME_DEBT: &[&str] = &[
    "Schuldbemiddeling via OCMW lopende, afbetalingsplan energie",
    "Collectieve schuldenregeling sinds 2024",
    "Achterstallige facturen ziekenfonds en water, nog geen plan",
    "Geen schulden gekend, krap budget",
    "Budgetbegeleiding bij het OCMW, leefgeld wekelijks",
];

const LANGUAGE_LITERACY: &[&str] = &[
    "Nederlands niveau A1, volgt les in het Huis van het Nederlands",
    "Spreekt vlot Nederlands, leest en schrijft moeizaam",
    "Nederlands moedertaal, geen ondersteuning nodig",
    "Laaggeletterd, ook in de moedertaal",
    "Nederlands niveau B1 behaald",
];

const DIGITAL_SKILLS: &[&str] = &[
    "Heeft een smartphone, geen laptop; itsme lukt niet zelfstandig",
    "Digitaal vaardig, solliciteert online",
    "Volgt digibanklessen in de bibliotheek",
    "Geen e-mailadres, hulp nodig bij Mijn VDAB",
];

const MOBILITY: &[&str] = &[
    "Geen rijbewijs, afhankelijk van tram en fiets",
    "Rijbewijs B, geen auto",
    "Fietst niet, leert fietsen via buurtwerk",
    "Heeft een auto, ploegenwerk mogelijk",
];

const CHILDCARE: &[&str] = &[
    "Alleenstaande ouder van twee kinderen, opvang na school ontbreekt",
    "Drie kinderen, oudste gaat naar de lagere school",
    "Opvang geregeld via grootouders",
    "Geen kinderen",
];

const SOCIAL_NETWORK: &[&str] = &[
    "Beperkt netwerk, contact met zus",
    "Sterk netwerk in de eigen gemeenschap",
    "Geïsoleerd, weinig sociale contacten",
    "Actief in een voetbalclub en de moskee",
];

const ADMINISTRATIVE: &[&str] = &[
    "Brieven blijven ongeopend, hulp nodig bij administratie",
    "Verblijfskaart moet verlengd worden",
    "Inschrijving ziekenfonds ontbreekt",
    "Administratie in orde",
];

const BENEFITS: &[&str] = &[
    "Leefloon (categorie alleenstaande)",
    "Leefloon (categorie gezin ten laste)",
    "Werkloosheidsuitkering",
    "Inkomensvervangende tegemoetkoming",
    "Geen inkomen",
    "Ziekte-uitkering via het ziekenfonds",
];

const ASYLUM: &[&str] = &[
    "Erkend vluchteling sinds 2022",
    "Subsidiaire bescherming, verblijf 1 jaar verlengbaar",
    "Verzoek om internationale bescherming lopende",
    "Gezinshereniging, verblijfskaart F",
];

const MENTAL_HEALTH: &[&str] = &[
    "Somberheid, in behandeling bij het CGG",
    "Angstklachten, wachtlijst psycholoog eerstelijn",
    "Trauma door vlucht, begeleiding bij Solentra",
    "Burn-out na vorige job",
];

const ADDICTION: &[&str] = &[
    "Alcoholgebruik, ambulante begeleiding bij De Sleutel",
    "Cannabisgebruik, wil minderen",
    "Gokproblematiek in het verleden, nu stabiel",
];

const PSYCHIATRIC: &[&str] = &[
    "Eerdere opname in een psychiatrisch ziekenhuis",
    "Diagnose bipolaire stoornis, medicatie stabiel",
];

const DISABILITY_DETAILS: &[&str] = &[
    "Rugklachten, geen zwaar tilwerk",
    "Slechtziend, aangepaste werkplek nodig",
    "Erkenning VAPH, beperkte arbeidsduur",
];

const NEURODIVERSITY: &[&str] = &[
    "ADHD, gestructureerde planning helpt",
    "Vermoeden van autisme, diagnostiek aangevraagd",
    "Dyslexie",
];

const JUSTICE_NOTES: &[&str] = &[
    "Enkelband afgelopen, begeleiding via justitiehuis",
    "Voorwaardelijke invrijheidstelling, voorwaarde werk of opleiding",
];

const NOTES: &[&str] = &[
    "Intakegesprek gevoerd; deelnemer wil vooral rust op financieel vlak.",
    "Huisbezoek samen met brugfiguur, situatie thuis is gespannen.",
    "Afspraak niet nagekomen, telefonisch opgevolgd; nieuwe afspraak volgende week.",
    "Vraag achter de vraag: schaamte over schulden houdt sollicitaties tegen.",
    "Deelnemer start maandag met werkplekleren, eerste indrukken positief.",
    "Overleg met VDAB: inschrijving als werkzoekende in orde gebracht.",
    "Taalles loopt goed, motivatie hoog.",
    "Terugval na ziekte, traject tijdelijk gepauzeerd.",
];

const PHASES_ACTIVE: &[&str] = &[
    "Stabilisering",
    "Activering",
    "Oriëntering naar werk",
    "Werkplekleren",
    "Taaltraject",
];

/// A birth date uniformly in 1960-01-01 ..= 2006-12-31.
fn birth_date(rng: &mut Rng) -> Date {
    let lo = time::macros::date!(1960 - 01 - 01).to_julian_day();
    let hi = time::macros::date!(2006 - 12 - 31).to_julian_day();
    Date::from_julian_day(rng.range(i64::from(lo), i64::from(hi)) as i32).unwrap_or(REFERENCE_DATE)
}

fn iso(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Lower-case ASCII for e-mail local parts (drops diacritics, spaces and other marks).
fn ascii_fold(s: &str) -> String {
    s.chars()
        .filter_map(|c| {
            let c = c.to_lowercase().next().unwrap_or(c);
            Some(match c {
                'a'..='z' | '0'..='9' => c,
                'á' | 'à' | 'â' | 'ä' => 'a',
                'é' | 'è' | 'ê' | 'ë' => 'e',
                'í' | 'ï' | 'ı' | 'î' => 'i',
                'ó' | 'ö' | 'ô' => 'o',
                'ú' | 'ü' | 'û' => 'u',
                'ç' | 'č' => 'c',
                'ş' | 'š' => 's',
                'ğ' => 'g',
                'ž' => 'z',
                _ => return None,
            })
        })
        .collect()
}

fn mobile(rng: &mut Rng) -> String {
    format!(
        "+32 4{}{} {:02} {:02} {:02}",
        rng.range(7, 9),
        rng.range(0, 9),
        rng.range(0, 99),
        rng.range(0, 99),
        rng.range(0, 99)
    )
}

/// A unique valid INSZ for `birth` and `gender` (odd serial = male, even = female).
fn unique_insz(rng: &mut Rng, birth: Date, gender: &str, used: &mut HashSet<String>) -> String {
    loop {
        let mut serial = rng.range(1, 997) as u16;
        match gender {
            "male" if serial.is_multiple_of(2) => serial -= 1,
            "female" if !serial.is_multiple_of(2) => serial += 1,
            _ => {}
        }
        let insz = Insz::synthetic(birth, serial).as_str().to_string();
        if used.insert(insz.clone()) {
            return insz;
        }
    }
}

/// A deterministic caseload of `n` participants for `seed`.
pub fn caseload(seed: u64, n: usize) -> Vec<SyntheticParticipant> {
    let mut rng = Rng(seed);
    // The showcase participant must never collide with a generated one.
    let mut used: HashSet<String> = HashSet::new();
    if let Some(Value::String(s)) = demo_showcase().fields.get("identity.insz") {
        used.insert(s.clone());
    }
    (0..n).map(|_| participant(&mut rng, &mut used)).collect()
}

fn participant(rng: &mut Rng, used: &mut HashSet<String>) -> SyntheticParticipant {
    let weights: Vec<(usize, usize)> = BACKGROUNDS
        .iter()
        .enumerate()
        .map(|(i, b)| (i, b.weight))
        .collect();
    let bg = &BACKGROUNDS[*rng.weighted(&weights)];
    let mut f: BTreeMap<String, Value> = BTreeMap::new();
    let mut set = |k: &str, v: Value| {
        f.insert(k.to_owned(), v);
    };

    // Identity.
    let gender = *rng.weighted(&[("female", 49), ("male", 50), ("x", 1)]);
    let given = if gender == "female" || (gender == "x" && rng.chance(50)) {
        *rng.pick(bg.female)
    } else {
        *rng.pick(bg.male)
    };
    let (fam_m, fam_f) = *rng.pick(bg.family);
    let family = if gender == "female" { fam_f } else { fam_m };
    let birth = birth_date(rng);
    let age = REFERENCE_DATE.year() - birth.year();
    let insz = unique_insz(rng, birth, gender, used);
    let nationality = *rng.weighted(bg.nationalities);
    set("identity.insz", json!(insz));
    set("identity.given_name", json!(given));
    set("identity.family_name", json!(family));
    set("identity.birth_date", json!(iso(birth)));
    set("identity.gender", json!(gender));
    set("identity.language", json!(rng.pick(bg.languages)));
    set("identity.nationality", json!(nationality));

    // Contact.
    let (postcode, place, streets) = rng.pick(STREETS);
    let mut address = format!("{} {}", rng.pick(streets), rng.range(1, 180));
    if rng.chance(20) {
        address.push_str(&format!(" bus {}", rng.range(1, 12)));
    }
    set(
        "contact.address",
        json!(format!("{address}, {postcode} {place}")),
    );
    set("contact.phone", json!(mobile(rng)));
    let has_email = rng.chance(75);
    if has_email {
        let email = format!(
            "{}.{}{}@{}",
            ascii_fold(given),
            ascii_fold(family),
            rng.range(1, 99),
            rng.pick(EMAIL_DOMAINS)
        );
        set("contact.email", json!(email));
    }
    let channel = if has_email {
        *rng.weighted(&[
            ("phone", 35),
            ("email", 20),
            ("sms", 25),
            ("letter", 10),
            ("visit", 10),
        ])
    } else {
        *rng.weighted(&[("phone", 45), ("sms", 30), ("letter", 10), ("visit", 15)])
    };
    set("contact.preferred_channel", json!(channel));

    // ESF+ entry indicators.
    let third_country = matches!(nationality, "TR" | "MA" | "AF" | "SY" | "ER");
    set(
        "esf.labour_status_entry",
        json!(rng.weighted(&[
            ("unemployed", 35),
            ("long_term_unemployed", 35),
            ("inactive", 25),
            ("employed", 5),
        ])),
    );
    set(
        "esf.education_level",
        json!(rng.weighted(&[("isced_0_2", 50), ("isced_3_4", 38), ("isced_5_8", 12)])),
    );
    // Art. 9 indicators: some participants decline to answer, which is an answer.
    let answer = |rng: &mut Rng, yes: bool| {
        if rng.chance(8) {
            "declined"
        } else if yes {
            "yes"
        } else {
            "no"
        }
    };
    let disability = rng.chance(15);
    let disability_answer = answer(rng, disability);
    set("esf_special.disability", json!(disability_answer));
    set("esf.third_country_national", json!(third_country));
    set(
        "esf.foreign_background",
        json!(!bg.flemish || rng.chance(3)),
    );
    let minority = rng.chance(bg.minority_percent);
    let minority_answer = answer(rng, minority);
    set("esf_special.minority", json!(minority_answer));
    let homeless = rng.chance(12);
    set("esf.homeless_or_housing_exclusion", json!(homeless));

    // Trajectory.
    let status = *rng.weighted(&[
        ("referred", 8),
        ("intake", 10),
        ("active", 40),
        ("paused", 7),
        ("outflow", 8),
        ("aftercare", 10),
        ("closed", 17),
    ]);
    let ended = matches!(status, "outflow" | "aftercare" | "closed");
    let phase = match status {
        "referred" => "Aanmelding",
        "intake" => "Intake en verkenning",
        "paused" => "Pauze, eerst stabilisering",
        "outflow" => "Uitstroom",
        "aftercare" => "Nazorg",
        "closed" => "Afgesloten",
        _ => *rng.pick(PHASES_ACTIVE),
    };
    set("trajectory.status", json!(status));
    set("trajectory.phase", json!(phase));
    let justice = rng.chance(4);
    let referral = if justice {
        "Justitiehuis Gent"
    } else if bg.refugee && rng.chance(40) {
        "Fedasil / lokaal opvanginitiatief"
    } else {
        *rng.pick(REFERRAL_CHANNELS)
    };
    set("trajectory.referral_channel", json!(referral));
    let start_lo = time::macros::date!(2024 - 03 - 01).to_julian_day();
    let start_hi = REFERENCE_DATE.to_julian_day() - if ended { 120 } else { 14 };
    let start = rng.range(i64::from(start_lo), i64::from(start_hi)) as i32;
    let start_date = iso(Date::from_julian_day(start).unwrap_or(REFERENCE_DATE));
    set("trajectory.start_date", json!(start_date));
    // The ESF+ operation starts with the trajectory.
    set("esf.entry_date", json!(start_date));
    set("trajectory.goals", json!(rng.pick(GOALS)));
    if !ended || status == "aftercare" {
        set("trajectory.next_steps", json!(rng.pick(NEXT_STEPS)));
    }
    if ended {
        let end_hi = i64::from(REFERENCE_DATE.to_julian_day() - 1);
        let end_lo = i64::from(start) + 90;
        let end = rng.range(end_lo, end_hi.max(end_lo)) as i32;
        let end_date = iso(Date::from_julian_day(end).unwrap_or(REFERENCE_DATE));
        set("trajectory.end_date", json!(end_date));
        set("esf.exit_date", json!(end_date));
        let (category, reason, exit) = *rng.weighted(&[
            (
                (
                    "work",
                    "Vast contract als productiemedewerker na IBO",
                    "employed",
                ),
                30,
            ),
            (
                (
                    "training",
                    "Start opleiding zorgkundige via VDAB",
                    "in_education",
                ),
                15,
            ),
            (
                (
                    "vdab_trajectory",
                    "Klaar voor een regulier VDAB-traject",
                    "job_searching",
                ),
                20,
            ),
            (
                (
                    "social_employment_art60",
                    "Tewerkstelling artikel 60 bij het OCMW",
                    "employed",
                ),
                15,
            ),
            (
                (
                    "volunteering",
                    "Vrijwilligerswerk in een sociaal restaurant",
                    "none",
                ),
                8,
            ),
            (
                (
                    "no_result",
                    "Verhuisd buiten Gent, geen contact meer",
                    "none",
                ),
                12,
            ),
        ]);
        set("trajectory.outflow_category", json!(category));
        set("trajectory.outflow_reason", json!(reason));
        let exit = if category == "training" && rng.chance(30) {
            "qualification_gained"
        } else {
            exit
        };
        set("esf.exit_status", json!(exit));
        // A qualification often comes with a job or further training.
        set(
            "esf.qualification_gained",
            json!(exit == "qualification_gained" || (exit != "none" && rng.chance(15))),
        );
        if status != "outflow" && rng.chance(60) {
            set(
                "esf.employed_6_months",
                json!(exit == "employed" && rng.chance(75)),
            );
        }
    }

    // Life domains (not every domain is filled in for everyone).
    let housing = if homeless {
        "Verblijft in nachtopvang, zoekt een vaste verblijfplaats"
    } else {
        *rng.pick(HOUSING)
    };
    set("life.housing", json!(housing));
    let domains: &[(&str, &[&str], usize)] = &[
        ("life.income_debt", INCOME_DEBT, 70),
        ("life.language_literacy", LANGUAGE_LITERACY, 60),
        ("life.digital_skills", DIGITAL_SKILLS, 50),
        ("life.mobility", MOBILITY, 45),
        ("life.childcare", CHILDCARE, 40),
        ("life.social_network", SOCIAL_NETWORK, 45),
        ("life.administrative", ADMINISTRATIVE, 45),
        ("life.benefits", BENEFITS, 80),
    ];
    for (field, texts, percent) in domains {
        if rng.chance(*percent) {
            set(field, json!(rng.pick(texts)));
        }
    }
    if bg.refugee {
        set("life.asylum_status", json!(rng.pick(ASYLUM)));
    }

    // Health (Art. 9) for some participants only.
    let health: &[(&str, &[&str], usize)] = &[
        ("health.mental_health", MENTAL_HEALTH, 25),
        ("health.addiction", ADDICTION, 12),
        ("health.psychiatric_history", PSYCHIATRIC, 6),
        ("health.neurodiversity", NEURODIVERSITY, 8),
    ];
    let mut has_health = false;
    for (field, texts, percent) in health {
        if rng.chance(*percent) {
            set(field, json!(rng.pick(texts)));
            has_health = true;
        }
    }
    if disability {
        set(
            "health.disability_details",
            json!(rng.pick(DISABILITY_DETAILS)),
        );
        has_health = true;
    }

    // Justice (Art. 10).
    set("justice.referral_by_justice", json!(justice));
    if justice && rng.chance(60) {
        set("justice.justice_notes", json!(rng.pick(JUSTICE_NOTES)));
    }

    // Measurements.
    set("measure.empowerment", json!(rng.range(10, 95)));
    set("measure.let_go_scale", json!(rng.range(1, 10)));
    set(
        "measure.life_domain_scores",
        json!(format!(
            "wonen {}/5, financiën {}/5, gezondheid {}/5, netwerk {}/5, werk {}/5",
            rng.range(1, 5),
            rng.range(1, 5),
            rng.range(1, 5),
            rng.range(1, 5),
            rng.range(1, 5)
        )),
    );

    let involvements = involvements(rng, age, bg);
    let caw_involved = involvements.iter().any(|(p, _)| p == "caw-oost-vlaanderen");
    let mut consents = Vec::new();
    if rng.chance(if has_health { 60 } else { 15 }) {
        consents.push("health_sharing".to_owned());
    }
    if caw_involved && rng.chance(60) {
        consents.push("caw_professional_secrecy".to_owned());
    }
    if rng.chance(40) {
        consents.push("group_case_discussion".to_owned());
    }
    let mut notes: Vec<String> = Vec::new();
    for _ in 0..rng.below(4) {
        let note = *rng.pick(NOTES);
        // Distinct notes only: a repeated text looks like a copy-paste error.
        if !notes.iter().any(|n| n == note) {
            notes.push(note.to_owned());
        }
    }

    SyntheticParticipant {
        fields: f,
        involvements,
        consents,
        notes,
    }
}

/// The case's involvements: toeleider first, one dossierbeheerder, one trajectgezel, and
/// sometimes a co_coach, a brugfiguur and a spoc_vdab. No `(partner, role)` pair twice.
fn involvements(rng: &mut Rng, age: i32, bg: &Background) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let add = |out: &mut Vec<(String, String)>, partner: &str, role: &str| {
        if !out.iter().any(|(p, r)| p == partner && r == role) {
            out.push((partner.to_owned(), role.to_owned()));
        }
    };
    let toeleider = *rng.weighted(&[
        ("ocmw-gent", 45),
        ("vdab", 30),
        ("caw-oost-vlaanderen", 15),
        ("stad-gent", 4),
        ("intro", 3),
        ("jes", 3),
    ]);
    add(&mut out, toeleider, "toeleider");
    // The registering OCMW or VDAB usually keeps the file itself.
    let dossier = match toeleider {
        "ocmw-gent" | "vdab" if rng.chance(70) => toeleider,
        _ => *rng.weighted(&[("ocmw-gent", 60), ("vdab", 40)]),
    };
    add(&mut out, dossier, "dossierbeheerder");
    let young = age < 26;
    let trajectgezel = *rng.weighted(&[
        ("jobandco", 30),
        ("intro", if bg.flemish { 2 } else { 20 }),
        ("jes", if young { 25 } else { 2 }),
        ("voluit", 12),
        ("amal", if bg.flemish { 3 } else { 12 }),
        ("ocmw-gent", 12),
        ("caw-oost-vlaanderen", 8),
    ]);
    add(&mut out, trajectgezel, "trajectgezel");
    if rng.chance(25) {
        let co = *rng.pick(&[
            "jobandco",
            "intro",
            "jes",
            "voluit",
            "amal",
            "ocmw-gent",
            "caw-oost-vlaanderen",
            "stad-gent",
        ]);
        if co != trajectgezel {
            add(&mut out, co, "co_coach");
        }
    }
    if rng.chance(20) {
        let brug = *rng.pick(&["caw-oost-vlaanderen", "voluit"]);
        add(&mut out, brug, "brugfiguur");
    }
    if rng.chance(50) {
        add(&mut out, "vdab", "spoc_vdab");
    }
    out
}

/// The fixed participant the demo's printed curl commands use: An Peeters, registered by OCMW
/// Gent (toeleider and dossierbeheerder), coached by Jobandco (trajectgezel), with VDAB as
/// spoc_vdab and CAW Oost-Vlaanderen as brugfiguur; she gave `health_sharing` consent and has
/// an addiction and a debt situation on file.
pub fn demo_showcase() -> SyntheticParticipant {
    let birth = Date::from_calendar_date(1987, Month::March, 14).unwrap_or(REFERENCE_DATE);
    let insz = Insz::synthetic(birth, 124).as_str().to_string();
    let fields: BTreeMap<String, Value> = [
        ("identity.insz", json!(insz.as_str())),
        ("identity.given_name", json!("An")),
        ("identity.family_name", json!("Peeters")),
        ("identity.birth_date", json!("1987-03-14")),
        ("identity.gender", json!("female")),
        ("identity.language", json!("nl")),
        ("identity.nationality", json!("BE")),
        ("contact.phone", json!("+32 472 18 45 90")),
        ("contact.email", json!("an.peeters87@telenet.be")),
        ("contact.address", json!("Sleepstraat 12, 9000 Gent")),
        ("contact.preferred_channel", json!("sms")),
        ("esf.labour_status_entry", json!("long_term_unemployed")),
        ("esf.education_level", json!("isced_0_2")),
        ("esf.entry_date", json!("2025-09-15")),
        ("esf_special.disability", json!("no")),
        ("esf.third_country_national", json!(false)),
        ("esf.foreign_background", json!(false)),
        ("esf_special.minority", json!("declined")),
        ("esf.homeless_or_housing_exclusion", json!(false)),
        ("trajectory.status", json!("active")),
        ("trajectory.phase", json!("Activering")),
        (
            "trajectory.referral_channel",
            json!("OCMW Gent, sociale dienst"),
        ),
        ("trajectory.start_date", json!("2025-09-15")),
        (
            "trajectory.goals",
            json!("Werkervaring opdoen via werkplekleren in een sociaal restaurant"),
        ),
        (
            "trajectory.next_steps",
            json!("Proefdag bij sociale-economiebedrijf bevestigen"),
        ),
        (
            "life.housing",
            json!("Huurt een kleine studio op de private markt, vocht en schimmel"),
        ),
        (
            "life.income_debt",
            json!("Schuldbemiddeling via OCMW lopende, afbetalingsplan energie"),
        ),
        ("life.benefits", json!("Leefloon (categorie alleenstaande)")),
        (
            "life.childcare",
            json!("Alleenstaande ouder van twee kinderen, opvang na school ontbreekt"),
        ),
        (
            "health.addiction",
            json!("Alcoholgebruik, ambulante begeleiding bij De Sleutel"),
        ),
        ("justice.referral_by_justice", json!(false)),
        ("measure.empowerment", json!(46)),
        ("measure.let_go_scale", json!(3)),
        (
            "measure.life_domain_scores",
            json!("wonen 2/5, financiën 1/5, gezondheid 3/5, netwerk 2/5, werk 1/5"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let inv = |p: &str, r: &str| (p.to_owned(), r.to_owned());
    SyntheticParticipant {
        fields,
        involvements: vec![
            inv("ocmw-gent", "toeleider"),
            inv("ocmw-gent", "dossierbeheerder"),
            inv("jobandco", "trajectgezel"),
            inv("vdab", "spoc_vdab"),
            inv("caw-oost-vlaanderen", "brugfiguur"),
        ],
        consents: vec!["health_sharing".to_owned()],
        notes: vec![
            "Vraag achter de vraag: schaamte over schulden houdt sollicitaties tegen.".to_owned(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use partnergate_core::insz::Insz;

    use super::*;

    /// Allowed values per enum field.
    const ENUMS: &[(&str, &[&str])] = &[
        ("identity.gender", &["female", "male", "x"]),
        (
            "contact.preferred_channel",
            &["phone", "email", "letter", "sms", "visit"],
        ),
        (
            "esf.labour_status_entry",
            &["unemployed", "long_term_unemployed", "inactive", "employed"],
        ),
        (
            "esf.education_level",
            &["isced_0_2", "isced_3_4", "isced_5_8"],
        ),
        ("esf_special.disability", &["yes", "no", "declined"]),
        ("esf_special.minority", &["yes", "no", "declined"]),
        (
            "esf.exit_status",
            &[
                "job_searching",
                "in_education",
                "qualification_gained",
                "employed",
                "none",
            ],
        ),
        (
            "trajectory.status",
            &[
                "referred",
                "intake",
                "active",
                "paused",
                "outflow",
                "aftercare",
                "closed",
            ],
        ),
        (
            "trajectory.outflow_category",
            &[
                "work",
                "training",
                "vdab_trajectory",
                "social_employment_art60",
                "volunteering",
                "no_result",
            ],
        ),
    ];

    const BOOLS: &[&str] = &[
        "esf.third_country_national",
        "esf.foreign_background",
        "esf.qualification_gained",
        "esf.homeless_or_housing_exclusion",
        "esf.employed_6_months",
        "justice.referral_by_justice",
    ];

    const DATES: &[&str] = &[
        "identity.birth_date",
        "trajectory.start_date",
        "trajectory.end_date",
        "esf.entry_date",
        "esf.exit_date",
    ];

    const TEXTS: &[&str] = &[
        "identity.insz",
        "identity.given_name",
        "identity.family_name",
        "identity.language",
        "identity.nationality",
        "contact.phone",
        "contact.email",
        "contact.address",
        "trajectory.phase",
        "trajectory.referral_channel",
        "trajectory.goals",
        "trajectory.next_steps",
        "trajectory.outflow_reason",
        "life.housing",
        "life.income_debt",
        "life.language_literacy",
        "life.digital_skills",
        "life.mobility",
        "life.childcare",
        "life.social_network",
        "life.administrative",
        "life.benefits",
        "life.asylum_status",
        "health.mental_health",
        "health.addiction",
        "health.psychiatric_history",
        "health.disability_details",
        "health.neurodiversity",
        "justice.justice_notes",
        "measure.life_domain_scores",
    ];

    fn check(p: &SyntheticParticipant) {
        for (k, v) in &p.fields {
            if let Some((_, allowed)) = ENUMS.iter().find(|(f, _)| f == k) {
                let s = v.as_str().unwrap();
                assert!(allowed.contains(&s), "{k} = {s}");
            } else if BOOLS.contains(&k.as_str()) {
                assert!(v.is_boolean(), "{k}");
            } else if DATES.contains(&k.as_str()) {
                let s = v.as_str().unwrap();
                let fmt = time::macros::format_description!("[year]-[month]-[day]");
                assert!(Date::parse(s, fmt).is_ok(), "{k} = {s}");
            } else if k == "measure.empowerment" {
                assert!((0..=100).contains(&v.as_i64().unwrap()));
            } else if k == "measure.let_go_scale" {
                assert!((1..=10).contains(&v.as_i64().unwrap()));
            } else {
                assert!(TEXTS.contains(&k.as_str()), "unexpected field {k}");
                let s = v.as_str().unwrap();
                assert!(!s.is_empty() && s.chars().count() <= 4000, "{k}");
            }
        }
        for required in [
            "identity.insz",
            "identity.given_name",
            "identity.family_name",
            "identity.birth_date",
            "contact.phone",
            "contact.address",
            "trajectory.status",
            "trajectory.start_date",
        ] {
            assert!(p.fields.contains_key(required), "{required}");
        }
        let ended = matches!(
            p.fields["trajectory.status"].as_str().unwrap(),
            "outflow" | "aftercare" | "closed"
        );
        for only_ended in [
            "trajectory.end_date",
            "trajectory.outflow_category",
            "esf.exit_status",
            "esf.exit_date",
        ] {
            assert_eq!(p.fields.contains_key(only_ended), ended, "{only_ended}");
        }
        if !ended {
            assert!(!p.fields.contains_key("esf.employed_6_months"));
        }
        let count = |role: &str| p.involvements.iter().filter(|(_, r)| r == role).count();
        assert_eq!(count("toeleider"), 1);
        assert_eq!(count("trajectgezel"), 1);
        assert_eq!(count("dossierbeheerder"), 1);
        assert_eq!(p.involvements[0].1, "toeleider");
        for (partner, role) in &p.involvements {
            assert!(PARTNERS.contains(&partner.as_str()), "{partner}");
            assert!(ROLES.contains(&role.as_str()), "{role}");
            match role.as_str() {
                "spoc_vdab" => assert_eq!(partner, "vdab"),
                "dossierbeheerder" => assert!(partner == "ocmw-gent" || partner == "vdab"),
                "brugfiguur" => {
                    assert!(partner == "caw-oost-vlaanderen" || partner == "voluit")
                }
                _ => {}
            }
        }
        let mut pairs = p.involvements.clone();
        pairs.sort();
        pairs.dedup();
        assert_eq!(pairs.len(), p.involvements.len(), "duplicate involvement");
        for c in &p.consents {
            assert!(CONSENT_SCOPES.contains(&c.as_str()), "{c}");
        }
        assert!(p.notes.len() <= 3);
        let insz = Insz::parse(p.fields["identity.insz"].as_str().unwrap()).unwrap();
        let birth = p.fields["identity.birth_date"].as_str().unwrap();
        assert_eq!(insz.birth_date().map(iso).as_deref(), Some(birth));
        let serial: u16 = insz.as_str()[6..9].parse().unwrap();
        match p.fields["identity.gender"].as_str().unwrap() {
            "male" => assert_eq!(serial % 2, 1),
            "female" => assert_eq!(serial % 2, 0),
            _ => {}
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        assert_eq!(caseload(42, 50), caseload(42, 50));
        // A longer caseload starts with the shorter one.
        assert_eq!(caseload(42, 80)[..50], caseload(42, 50)[..]);
    }

    #[test]
    fn different_for_different_seeds() {
        assert_ne!(caseload(1, 20), caseload(2, 20));
    }

    #[test]
    fn all_insz_valid_and_unique() {
        let people = caseload(7, 3000);
        let mut seen = HashSet::new();
        seen.insert(
            demo_showcase().fields["identity.insz"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        for p in &people {
            let s = p.fields["identity.insz"].as_str().unwrap();
            assert!(Insz::parse(s).is_ok());
            assert!(seen.insert(s.to_owned()), "duplicate INSZ");
        }
    }

    #[test]
    fn all_values_and_roles_within_the_agreement_lists() {
        for seed in [0, 1, 99, u64::MAX] {
            for p in caseload(seed, 500) {
                check(&p);
            }
        }
    }

    #[test]
    fn caseload_is_varied() {
        let people = caseload(3, 1000);
        let distinct = |field: &str| {
            people
                .iter()
                .filter_map(|p| p.fields.get(field))
                .map(|v| v.to_string())
                .collect::<HashSet<_>>()
                .len()
        };
        assert_eq!(distinct("trajectory.status"), 7);
        assert_eq!(distinct("identity.nationality"), 8);
        assert!(distinct("identity.family_name") > 60);
        assert!(
            people
                .iter()
                .any(|p| p.fields.contains_key("health.addiction"))
        );
        assert!(
            people
                .iter()
                .any(|p| p.fields.contains_key("justice.justice_notes"))
        );
        assert!(people.iter().any(|p| p.consents.is_empty()));
        assert!(people.iter().any(|p| p.notes.is_empty()));
        let spoc = people
            .iter()
            .filter(|p| p.involvements.iter().any(|(_, r)| r == "spoc_vdab"))
            .count();
        assert!((400..600).contains(&spoc), "{spoc}");
        for p in &people {
            let birth = &p.fields["identity.birth_date"].as_str().unwrap()[..4];
            assert!(("1960"..="2006").contains(&birth));
            let phone = p.fields["contact.phone"].as_str().unwrap();
            assert!(phone.starts_with("+32 4") && phone.len() == 16, "{phone}");
            if let Some(e) = p.fields.get("contact.email") {
                assert!(e.as_str().unwrap().is_ascii());
            }
        }
    }

    #[test]
    fn showcase_is_valid_and_as_documented() {
        let p = demo_showcase();
        check(&p);
        assert_eq!(p, demo_showcase());
        assert_eq!(p.involvements[0], ("ocmw-gent".into(), "toeleider".into()));
        assert!(
            p.involvements
                .contains(&("jobandco".into(), "trajectgezel".into()))
        );
        assert!(
            p.involvements
                .contains(&("caw-oost-vlaanderen".into(), "brugfiguur".into()))
        );
        assert!(
            p.involvements
                .contains(&("vdab".into(), "spoc_vdab".into()))
        );
        assert!(p.consents.contains(&"health_sharing".to_owned()));
        assert!(p.fields.contains_key("health.addiction"));
        assert!(p.fields.contains_key("life.income_debt"));
        assert!(!p.notes.is_empty());
    }
}
