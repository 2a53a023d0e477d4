//! Countries: webCRM's free-text country names to Chargebee's ISO 3166-1 alpha-2 codes.
//!
//! webCRM users type countries in English or their own language, with or without diacritics,
//! so a lookup table of names per country (English for all of ISO 3166-1; Danish, Swedish,
//! Norwegian and German for Europe and the largest economies) is matched after normalising case,
//! whitespace and punctuation. Diacritics are folded only as a second step, and a folded
//! spelling that would fit two countries is dropped rather than guessed.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::LazyLock;

/// ISO 3166-1 alpha-2, alpha-3 and the names the country goes by: English (the ISO short name
/// and common variants) first, then Danish, Swedish, Norwegian, German and local names where
/// they differ.
type Country = (&'static str, &'static str, &'static [&'static str]);

#[rustfmt::skip]
const COUNTRIES: &[Country] = &[
    ("AF", "AFG", &["Afghanistan"]),
    ("AX", "ALA", &["Åland Islands", "Åland", "Ålandinseln", "Ahvenanmaa"]),
    ("AL", "ALB", &["Albania", "Albanien", "Shqipëria"]),
    ("DZ", "DZA", &["Algeria", "Algeriet", "Algerie", "Algerien"]),
    ("AS", "ASM", &["American Samoa", "Amerikansk Samoa", "Amerikanska Samoa", "Amerikanisch-Samoa"]),
    ("AD", "AND", &["Andorra"]),
    ("AO", "AGO", &["Angola"]),
    ("AI", "AIA", &["Anguilla"]),
    ("AQ", "ATA", &["Antarctica", "Antarktis"]),
    ("AG", "ATG", &["Antigua and Barbuda", "Antigua og Barbuda", "Antigua och Barbuda", "Antigua und Barbuda"]),
    ("AR", "ARG", &["Argentina", "Argentinien"]),
    ("AM", "ARM", &["Armenia", "Armenien"]),
    ("AW", "ABW", &["Aruba"]),
    ("AU", "AUS", &["Australia", "Australien"]),
    ("AT", "AUT", &["Austria", "Østrig", "Österrike", "Østerrike", "Österreich"]),
    ("AZ", "AZE", &["Azerbaijan", "Aserbajdsjan", "Azerbajdzjan", "Aserbaidschan"]),
    ("BS", "BHS", &["Bahamas", "Bahamas (the)"]),
    ("BH", "BHR", &["Bahrain"]),
    ("BD", "BGD", &["Bangladesh", "Bangladesch"]),
    ("BB", "BRB", &["Barbados"]),
    ("BY", "BLR", &["Belarus", "Hviderusland", "Vitryssland", "Hviterussland", "Weißrussland"]),
    ("BE", "BEL", &["Belgium", "Belgien", "Belgia", "België", "Belgique"]),
    ("BZ", "BLZ", &["Belize"]),
    ("BJ", "BEN", &["Benin"]),
    ("BM", "BMU", &["Bermuda"]),
    ("BT", "BTN", &["Bhutan"]),
    ("BO", "BOL", &["Bolivia", "Bolivia (Plurinational State of)", "Plurinational State of Bolivia", "Bolivien"]),
    ("BQ", "BES", &["Bonaire, Sint Eustatius and Saba", "Caribbean Netherlands", "Bonaire"]),
    ("BA", "BIH", &["Bosnia and Herzegovina", "Bosnia", "Bosnia-Herzegovina", "Bosnien-Hercegovina", "Bosnien og Hercegovina", "Bosnien och Hercegovina", "Bosnia-Hercegovina", "Bosnia og Hercegovina", "Bosnien und Herzegowina", "Bosna i Hercegovina"]),
    ("BW", "BWA", &["Botswana"]),
    ("BV", "BVT", &["Bouvet Island", "Bouvetøya", "Bouvetøen", "Bouvetön", "Bouvetinsel"]),
    ("BR", "BRA", &["Brazil", "Brasilien", "Brasil"]),
    ("IO", "IOT", &["British Indian Ocean Territory"]),
    ("BN", "BRN", &["Brunei Darussalam", "Brunei"]),
    ("BG", "BGR", &["Bulgaria", "Bulgarien"]),
    ("BF", "BFA", &["Burkina Faso"]),
    ("BI", "BDI", &["Burundi"]),
    ("CV", "CPV", &["Cabo Verde", "Cape Verde", "Kap Verde"]),
    ("KH", "KHM", &["Cambodia", "Cambodja", "Kambodja", "Kambodsja", "Kambodscha"]),
    ("CM", "CMR", &["Cameroon", "Cameroun", "Kamerun"]),
    ("CA", "CAN", &["Canada", "Kanada"]),
    ("KY", "CYM", &["Cayman Islands", "Caymanøerne", "Caymanöarna", "Caymanøyene", "Kaimaninseln"]),
    ("CF", "CAF", &["Central African Republic", "Den Centralafrikanske Republik", "Centralafrikanska republiken", "Den sentralafrikanske republikk", "Zentralafrikanische Republik"]),
    ("TD", "TCD", &["Chad", "Tchad", "Tsjad", "Tschad"]),
    ("CL", "CHL", &["Chile"]),
    ("CN", "CHN", &["China", "People's Republic of China", "Kina", "Volksrepublik China"]),
    ("CX", "CXR", &["Christmas Island", "Juleøen", "Julön", "Christmasøya", "Weihnachtsinsel"]),
    ("CC", "CCK", &["Cocos (Keeling) Islands", "Cocos Islands", "Keeling Islands", "Kokosinseln"]),
    ("CO", "COL", &["Colombia", "Kolumbien"]),
    ("KM", "COM", &["Comoros", "Comorerne", "Komorerna", "Komorene", "Komoren"]),
    ("CG", "COG", &["Congo", "Republic of the Congo", "Congo-Brazzaville", "Republik Kongo"]),
    ("CD", "COD", &["Congo, Democratic Republic of the", "Democratic Republic of the Congo", "DR Congo", "DRC", "Congo-Kinshasa", "Demokratiske Republik Congo", "Demokratiska republiken Kongo", "Den demokratiske republikken Kongo", "Demokratische Republik Kongo"]),
    ("CK", "COK", &["Cook Islands", "Cookøerne", "Cooköarna", "Cookøyene", "Cookinseln"]),
    ("CR", "CRI", &["Costa Rica"]),
    ("CI", "CIV", &["Côte d'Ivoire", "Ivory Coast", "Elfenbenskysten", "Elfenbenskusten", "Elfenbeinküste"]),
    ("HR", "HRV", &["Croatia", "Kroatien", "Kroatia", "Hrvatska"]),
    ("CU", "CUB", &["Cuba", "Kuba"]),
    ("CW", "CUW", &["Curaçao"]),
    ("CY", "CYP", &["Cyprus", "Cypern", "Kypros", "Zypern"]),
    ("CZ", "CZE", &["Czechia", "Czech Republic", "Tjekkiet", "Tjeckien", "Tsjekkia", "Tschechien", "Tschechische Republik", "Česko", "Česká republika"]),
    ("DK", "DNK", &["Denmark", "Danmark", "Dänemark"]),
    ("DJ", "DJI", &["Djibouti", "Dschibuti"]),
    ("DM", "DMA", &["Dominica"]),
    ("DO", "DOM", &["Dominican Republic", "Den Dominikanske Republik", "Dominikanska republiken", "Den dominikanske republikk", "Dominikanische Republik"]),
    ("EC", "ECU", &["Ecuador"]),
    ("EG", "EGY", &["Egypt", "Egypten", "Ägypten"]),
    ("SV", "SLV", &["El Salvador"]),
    ("GQ", "GNQ", &["Equatorial Guinea", "Ækvatorialguinea", "Ekvatorialguinea", "Äquatorialguinea"]),
    ("ER", "ERI", &["Eritrea"]),
    ("EE", "EST", &["Estonia", "Estland", "Eesti"]),
    ("SZ", "SWZ", &["Eswatini", "Swaziland", "Swasiland"]),
    ("ET", "ETH", &["Ethiopia", "Etiopien", "Etiopia", "Äthiopien"]),
    ("FK", "FLK", &["Falkland Islands (Malvinas)", "Falkland Islands", "Falklandsøerne", "Falklandsöarna", "Falklandsøyene", "Falklandinseln"]),
    ("FO", "FRO", &["Faroe Islands", "Faeroe Islands", "Faroes", "Færøerne", "Färöarna", "Færøyene", "Färöer", "Färöer-Inseln", "Føroyar"]),
    ("FJ", "FJI", &["Fiji", "Fidschi"]),
    ("FI", "FIN", &["Finland", "Finnland", "Suomi"]),
    ("FR", "FRA", &["France", "Frankrig", "Frankrike", "Frankreich"]),
    ("GF", "GUF", &["French Guiana", "Fransk Guyana", "Franska Guyana", "Französisch-Guayana"]),
    ("PF", "PYF", &["French Polynesia", "Fransk Polynesien", "Franska Polynesien", "Fransk Polynesia", "Französisch-Polynesien"]),
    ("TF", "ATF", &["French Southern Territories", "French Southern and Antarctic Lands"]),
    ("GA", "GAB", &["Gabon", "Gabun"]),
    ("GM", "GMB", &["Gambia", "Gambia (the)"]),
    ("GE", "GEO", &["Georgia", "Georgien", "Sakartvelo"]),
    ("DE", "DEU", &["Germany", "Tyskland", "Deutschland", "Bundesrepublik Deutschland"]),
    ("GH", "GHA", &["Ghana"]),
    ("GI", "GIB", &["Gibraltar"]),
    ("GR", "GRC", &["Greece", "Grækenland", "Grekland", "Hellas", "Griechenland", "Ellada"]),
    ("GL", "GRL", &["Greenland", "Grønland", "Grönland", "Kalaallit Nunaat"]),
    ("GD", "GRD", &["Grenada"]),
    ("GP", "GLP", &["Guadeloupe"]),
    ("GU", "GUM", &["Guam"]),
    ("GT", "GTM", &["Guatemala"]),
    ("GG", "GGY", &["Guernsey"]),
    ("GN", "GIN", &["Guinea"]),
    ("GW", "GNB", &["Guinea-Bissau"]),
    ("GY", "GUY", &["Guyana"]),
    ("HT", "HTI", &["Haiti"]),
    ("HM", "HMD", &["Heard Island and McDonald Islands"]),
    ("VA", "VAT", &["Holy See", "Vatican", "Vatican City", "Vatican City State", "Vatikanstaten", "Vatikanstadt", "Vatikan"]),
    ("HN", "HND", &["Honduras"]),
    ("HK", "HKG", &["Hong Kong", "Hongkong"]),
    ("HU", "HUN", &["Hungary", "Ungarn", "Ungern", "Magyarország"]),
    ("IS", "ISL", &["Iceland", "Island", "Ísland"]),
    ("IN", "IND", &["India", "Indien"]),
    ("ID", "IDN", &["Indonesia", "Indonesien"]),
    ("IR", "IRN", &["Iran", "Iran (Islamic Republic of)", "Islamic Republic of Iran"]),
    ("IQ", "IRQ", &["Iraq", "Irak"]),
    ("IE", "IRL", &["Ireland", "Republic of Ireland", "Eire", "Irland", "Éire"]),
    ("IM", "IMN", &["Isle of Man", "Insel Man"]),
    ("IL", "ISR", &["Israel"]),
    ("IT", "ITA", &["Italy", "Italien", "Italia"]),
    ("JM", "JAM", &["Jamaica", "Jamaika"]),
    ("JP", "JPN", &["Japan"]),
    ("JE", "JEY", &["Jersey"]),
    ("JO", "JOR", &["Jordan", "Jordanien"]),
    ("KZ", "KAZ", &["Kazakhstan", "Kasakhstan", "Kazakstan", "Kasachstan"]),
    ("KE", "KEN", &["Kenya", "Kenia"]),
    ("KI", "KIR", &["Kiribati"]),
    ("KP", "PRK", &["Korea, Democratic People's Republic of", "Democratic People's Republic of Korea", "North Korea", "Nordkorea", "Nord-Korea"]),
    ("KR", "KOR", &["Korea, Republic of", "Republic of Korea", "South Korea", "Korea", "Sydkorea", "Sør-Korea", "Südkorea"]),
    ("KW", "KWT", &["Kuwait"]),
    ("KG", "KGZ", &["Kyrgyzstan", "Kirgisistan", "Kirgizistan"]),
    ("LA", "LAO", &["Lao People's Democratic Republic", "Laos"]),
    ("LV", "LVA", &["Latvia", "Letland", "Lettland", "Latvija"]),
    ("LB", "LBN", &["Lebanon", "Libanon"]),
    ("LS", "LSO", &["Lesotho"]),
    ("LR", "LBR", &["Liberia"]),
    ("LY", "LBY", &["Libya", "Libyen"]),
    ("LI", "LIE", &["Liechtenstein"]),
    ("LT", "LTU", &["Lithuania", "Litauen", "Lietuva"]),
    ("LU", "LUX", &["Luxembourg", "Luxemburg", "Lëtzebuerg"]),
    ("MO", "MAC", &["Macao", "Macau"]),
    ("MG", "MDG", &["Madagascar", "Madagaskar"]),
    ("MW", "MWI", &["Malawi"]),
    ("MY", "MYS", &["Malaysia"]),
    ("MV", "MDV", &["Maldives", "Maldiverne", "Maldiverna", "Maldivene", "Malediven"]),
    ("ML", "MLI", &["Mali"]),
    ("MT", "MLT", &["Malta"]),
    ("MH", "MHL", &["Marshall Islands", "Marshalløerne", "Marshallöarna", "Marshalløyene", "Marshallinseln"]),
    ("MQ", "MTQ", &["Martinique"]),
    ("MR", "MRT", &["Mauritania", "Mauretanien"]),
    ("MU", "MUS", &["Mauritius"]),
    ("YT", "MYT", &["Mayotte"]),
    ("MX", "MEX", &["Mexico", "Mexiko", "México"]),
    ("FM", "FSM", &["Micronesia (Federated States of)", "Federated States of Micronesia", "Micronesia", "Mikronesien"]),
    ("MD", "MDA", &["Moldova", "Moldova, Republic of", "Republic of Moldova", "Moldavien", "Moldau", "Republik Moldau", "Moldawien"]),
    ("MC", "MCO", &["Monaco"]),
    ("MN", "MNG", &["Mongolia", "Mongoliet", "Mongolei"]),
    ("ME", "MNE", &["Montenegro", "Crna Gora"]),
    ("MS", "MSR", &["Montserrat"]),
    ("MA", "MAR", &["Morocco", "Marokko", "Marocko"]),
    ("MZ", "MOZ", &["Mozambique", "Moçambique", "Mosambik"]),
    ("MM", "MMR", &["Myanmar", "Burma"]),
    ("NA", "NAM", &["Namibia"]),
    ("NR", "NRU", &["Nauru"]),
    ("NP", "NPL", &["Nepal"]),
    ("NL", "NLD", &["Netherlands", "Netherlands, Kingdom of the", "Kingdom of the Netherlands", "Holland", "Nederlandene", "Nederländerna", "Nederland", "Niederlande"]),
    ("NC", "NCL", &["New Caledonia", "Ny Kaledonien", "Nya Kaledonien", "Ny-Caledonia", "Neukaledonien"]),
    ("NZ", "NZL", &["New Zealand", "Nya Zeeland", "Neuseeland", "Aotearoa"]),
    ("NI", "NIC", &["Nicaragua"]),
    ("NE", "NER", &["Niger"]),
    ("NG", "NGA", &["Nigeria"]),
    ("NU", "NIU", &["Niue"]),
    ("NF", "NFK", &["Norfolk Island", "Norfolkinsel"]),
    ("MK", "MKD", &["North Macedonia", "Republic of North Macedonia", "Macedonia", "Nordmakedonien", "Nord-Makedonia", "Nordmazedonien", "Severna Makedonija"]),
    ("MP", "MNP", &["Northern Mariana Islands"]),
    ("NO", "NOR", &["Norway", "Norge", "Noreg", "Norwegen"]),
    ("OM", "OMN", &["Oman"]),
    ("PK", "PAK", &["Pakistan"]),
    ("PW", "PLW", &["Palau"]),
    ("PS", "PSE", &["Palestine, State of", "State of Palestine", "Palestine", "Palæstina", "Palestina", "Palästina"]),
    ("PA", "PAN", &["Panama"]),
    ("PG", "PNG", &["Papua New Guinea", "Papua Ny Guinea", "Papua Nya Guinea", "Papua Ny-Guinea", "Papua-Neuguinea"]),
    ("PY", "PRY", &["Paraguay"]),
    ("PE", "PER", &["Peru"]),
    ("PH", "PHL", &["Philippines", "Filippinerne", "Filippinerna", "Filippinene", "Philippinen"]),
    ("PN", "PCN", &["Pitcairn", "Pitcairn Islands"]),
    ("PL", "POL", &["Poland", "Polen", "Polska"]),
    ("PT", "PRT", &["Portugal"]),
    ("PR", "PRI", &["Puerto Rico"]),
    ("QA", "QAT", &["Qatar", "Katar"]),
    ("RE", "REU", &["Réunion"]),
    ("RO", "ROU", &["Romania", "Rumænien", "Rumänien", "România"]),
    ("RU", "RUS", &["Russian Federation", "Russia", "Rusland", "Ryssland", "Russland"]),
    ("RW", "RWA", &["Rwanda", "Ruanda"]),
    ("BL", "BLM", &["Saint Barthélemy"]),
    ("SH", "SHN", &["Saint Helena, Ascension and Tristan da Cunha", "Saint Helena"]),
    ("KN", "KNA", &["Saint Kitts and Nevis"]),
    ("LC", "LCA", &["Saint Lucia"]),
    ("MF", "MAF", &["Saint Martin (French part)", "Saint Martin"]),
    ("PM", "SPM", &["Saint Pierre and Miquelon"]),
    ("VC", "VCT", &["Saint Vincent and the Grenadines"]),
    ("WS", "WSM", &["Samoa"]),
    ("SM", "SMR", &["San Marino"]),
    ("ST", "STP", &["Sao Tome and Principe", "São Tomé and Príncipe"]),
    ("SA", "SAU", &["Saudi Arabia", "Saudi-Arabien", "Saudiarabien", "Saudi-Arabia"]),
    ("SN", "SEN", &["Senegal"]),
    ("RS", "SRB", &["Serbia", "Serbien", "Srbija"]),
    ("SC", "SYC", &["Seychelles", "Seychellerne", "Seychellerna", "Seychellene", "Seychellen"]),
    ("SL", "SLE", &["Sierra Leone"]),
    ("SG", "SGP", &["Singapore", "Singapur"]),
    ("SX", "SXM", &["Sint Maarten (Dutch part)", "Sint Maarten"]),
    ("SK", "SVK", &["Slovakia", "Slovakiet", "Slovakien", "Slowakei", "Slovensko"]),
    ("SI", "SVN", &["Slovenia", "Slovenien", "Slowenien", "Slovenija"]),
    ("SB", "SLB", &["Solomon Islands", "Salomonøerne", "Salomonöarna", "Salomonøyene", "Salomonen"]),
    ("SO", "SOM", &["Somalia"]),
    ("ZA", "ZAF", &["South Africa", "Sydafrika", "Sør-Afrika", "Südafrika"]),
    ("GS", "SGS", &["South Georgia and the South Sandwich Islands"]),
    ("SS", "SSD", &["South Sudan", "Sydsudan", "Sør-Sudan", "Südsudan"]),
    ("ES", "ESP", &["Spain", "Spanien", "Spania", "España"]),
    ("LK", "LKA", &["Sri Lanka"]),
    ("SD", "SDN", &["Sudan"]),
    ("SR", "SUR", &["Suriname", "Surinam"]),
    ("SJ", "SJM", &["Svalbard and Jan Mayen", "Svalbard og Jan Mayen", "Svalbard och Jan Mayen", "Svalbard und Jan Mayen"]),
    ("SE", "SWE", &["Sweden", "Sverige", "Schweden"]),
    ("CH", "CHE", &["Switzerland", "Schweiz", "Sveits", "Suisse", "Svizzera"]),
    ("SY", "SYR", &["Syrian Arab Republic", "Syria", "Syrien"]),
    ("TW", "TWN", &["Taiwan", "Taiwan, Province of China"]),
    ("TJ", "TJK", &["Tajikistan", "Tadsjikistan", "Tadzjikistan", "Tadschikistan"]),
    ("TZ", "TZA", &["Tanzania", "Tanzania, United Republic of", "United Republic of Tanzania", "Tansania"]),
    ("TH", "THA", &["Thailand"]),
    ("TL", "TLS", &["Timor-Leste", "East Timor", "Østtimor", "Östtimor", "Øst-Timor", "Osttimor"]),
    ("TG", "TGO", &["Togo"]),
    ("TK", "TKL", &["Tokelau"]),
    ("TO", "TON", &["Tonga"]),
    ("TT", "TTO", &["Trinidad and Tobago", "Trinidad og Tobago", "Trinidad och Tobago", "Trinidad und Tobago"]),
    ("TN", "TUN", &["Tunisia", "Tunesien", "Tunisien"]),
    ("TR", "TUR", &["Türkiye", "Turkey", "Tyrkiet", "Turkiet", "Tyrkia", "Türkei"]),
    ("TM", "TKM", &["Turkmenistan"]),
    ("TC", "TCA", &["Turks and Caicos Islands"]),
    ("TV", "TUV", &["Tuvalu"]),
    ("UG", "UGA", &["Uganda"]),
    ("UA", "UKR", &["Ukraine", "Ukraina"]),
    ("AE", "ARE", &["United Arab Emirates", "UAE", "Forenede Arabiske Emirater", "De Forenede Arabiske Emirater", "Förenade Arabemiraten", "De forente arabiske emirater", "Vereinigte Arabische Emirate", "VAE"]),
    ("GB", "GBR", &["United Kingdom", "United Kingdom of Great Britain and Northern Ireland", "UK", "Great Britain", "Britain", "England", "Scotland", "Wales", "Northern Ireland", "Storbritannien", "Det Forenede Kongerige", "Förenade kungariket", "Storbritannia", "Det forente kongerike", "Vereinigtes Königreich", "Großbritannien", "Skotland", "Skottland", "Schottland", "Nordirland", "Nord-Irland"]),
    ("US", "USA", &["United States", "United States of America", "America", "Amerikas Forenede Stater", "Förenta staterna", "Amerikas förenta stater", "Amerikas forente stater", "Vereinigte Staaten", "Vereinigte Staaten von Amerika"]),
    ("UM", "UMI", &["United States Minor Outlying Islands"]),
    ("UY", "URY", &["Uruguay"]),
    ("UZ", "UZB", &["Uzbekistan", "Usbekistan"]),
    ("VU", "VUT", &["Vanuatu"]),
    ("VE", "VEN", &["Venezuela", "Venezuela (Bolivarian Republic of)", "Bolivarian Republic of Venezuela"]),
    ("VN", "VNM", &["Viet Nam", "Vietnam"]),
    ("VG", "VGB", &["Virgin Islands (British)", "British Virgin Islands", "Britiske Jomfruøer", "Brittiska Jungfruöarna", "Britiske Jomfruøyer", "Britische Jungferninseln"]),
    ("VI", "VIR", &["Virgin Islands (U.S.)", "US Virgin Islands", "United States Virgin Islands", "Amerikanske Jomfruøer", "Amerikanska Jungfruöarna", "Amerikanske Jomfruøyer", "Amerikanische Jungferninseln"]),
    ("WF", "WLF", &["Wallis and Futuna"]),
    ("EH", "ESH", &["Western Sahara", "Vestsahara", "Västsahara", "Westsahara"]),
    ("YE", "YEM", &["Yemen", "Jemen"]),
    ("ZM", "ZMB", &["Zambia", "Sambia"]),
    ("ZW", "ZWE", &["Zimbabwe", "Simbabwe"]),
];

/// Names keyed by [`key`]; the folded map holds [`fold`]ed keys, with `None` where two countries
/// share a folded spelling.
struct Index {
    exact: HashMap<String, &'static str>,
    folded: HashMap<String, Option<&'static str>>,
}

static INDEX: LazyLock<Index> = LazyLock::new(|| build().0);

/// The ISO 3166-1 alpha-2 code for a country name or code as typed into webCRM; `None` when the
/// name is blank or not recognised.
pub fn to_iso2(name: &str) -> Option<&'static str> {
    let key = key(name);
    if key.is_empty() {
        return None;
    }
    let index = &*INDEX;
    if let Some(&code) = index.exact.get(&key) {
        return Some(code);
    }
    index.folded.get(&fold(&key, false)).copied().flatten()
}

/// Lower case; runs of whitespace and punctuation as one space; dots and apostrophes dropped
/// (`U.S.A.`, `Côte d'Ivoire`); `&` read as "and"; combining marks dropped, so decomposed input
/// reaches the folded lookup; a leading or trailing "the" ignored (`The Netherlands`,
/// `Gambia (the)`).
fn key(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut gap = false;
    for c in s.chars().flat_map(char::to_lowercase) {
        if ('\u{300}'..='\u{36f}').contains(&c) || matches!(c, '.' | '\'' | '’' | 'ʼ' | '`' | '´')
        {
            continue;
        }
        if c == '&' {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str("and");
            gap = true;
        } else if c.is_alphanumeric() {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.push(c);
        } else {
            gap = true;
        }
    }
    let trimmed = out.strip_prefix("the ").unwrap_or(&out);
    let trimmed = trimmed.strip_suffix(" the").unwrap_or(trimmed);
    if trimmed.len() == out.len() {
        out
    } else {
        trimmed.to_string()
    }
}

/// Folds diacritics in a [`key`]. Plain folding drops them (`ö` → `o`); expanded folding uses the
/// Nordic and German transliterations (`ö`/`ø` → `oe`, `ä` → `ae`, `ü` → `ue`, `å` → `aa`), so
/// "Osterrike" and "Oesterreich" both find Austria.
fn fold(key: &str, expanded: bool) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        let plain = match c {
            'ä' if expanded => "ae",
            'å' if expanded => "aa",
            'ö' | 'ø' if expanded => "oe",
            'ü' if expanded => "ue",
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
            'æ' => "ae",
            'ç' | 'ć' | 'č' => "c",
            'ď' | 'đ' | 'ð' => "d",
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => "e",
            'ğ' | 'ģ' => "g",
            'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => "i",
            'ķ' => "k",
            'ĺ' | 'ļ' | 'ľ' | 'ł' => "l",
            'ñ' | 'ń' | 'ņ' | 'ň' => "n",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
            'œ' => "oe",
            'ŕ' | 'ř' => "r",
            'ś' | 'ş' | 'š' | 'ș' => "s",
            'ß' => "ss",
            'ţ' | 'ť' | 'ț' => "t",
            'þ' => "th",
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' | 'ų' => "u",
            'ý' | 'ÿ' => "y",
            'ź' | 'ż' | 'ž' => "z",
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push_str(plain);
    }
    out
}

/// The keys a spelling is known by: itself, and with "saint" abbreviated (`St Lucia`).
fn spellings(key: String) -> Vec<String> {
    let short = key
        .split(' ')
        .map(|word| if word == "saint" { "st" } else { word })
        .collect::<Vec<_>>()
        .join(" ");
    if short == key {
        vec![key]
    } else {
        vec![key, short]
    }
}

/// Builds the index, also returning the keys that two countries claim exactly (a mistake in
/// the table) and the folded keys dropped as ambiguous.
fn build() -> (Index, Vec<String>, Vec<String>) {
    let mut exact: HashMap<String, &'static str> = HashMap::new();
    let mut folded: HashMap<String, Option<&'static str>> = HashMap::new();
    let mut conflicts = Vec::new();
    for &(alpha2, alpha3, names) in COUNTRIES {
        for name in [alpha2, alpha3].iter().chain(names) {
            for key in spellings(key(name)) {
                for variant in [fold(&key, false), fold(&key, true)] {
                    folded
                        .entry(variant)
                        .and_modify(|code| {
                            if *code != Some(alpha2) {
                                *code = None;
                            }
                        })
                        .or_insert(Some(alpha2));
                }
                match exact.entry(key) {
                    Entry::Vacant(entry) => {
                        entry.insert(alpha2);
                    }
                    Entry::Occupied(entry) if *entry.get() != alpha2 => {
                        conflicts.push(format!("{:?}: {} and {alpha2}", entry.key(), entry.get()));
                    }
                    Entry::Occupied(_) => {}
                }
            }
        }
    }
    let mut ambiguous: Vec<String> = folded
        .iter()
        .filter(|(_, code)| code.is_none())
        .map(|(key, _)| key.clone())
        .collect();
    ambiguous.sort();
    (Index { exact, folded }, conflicts, ambiguous)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_in_five_languages() {
        let cases = [
            // English, with common variants
            ("Denmark", "DK"),
            ("United Kingdom", "GB"),
            ("UK", "GB"),
            ("U.K.", "GB"),
            ("Great Britain", "GB"),
            ("England", "GB"),
            ("Scotland", "GB"),
            ("USA", "US"),
            ("U.S.A.", "US"),
            ("United States of America", "US"),
            ("united states", "US"),
            ("Holland", "NL"),
            ("The Netherlands", "NL"),
            ("Netherlands, Kingdom of the", "NL"),
            ("Czech Republic", "CZ"),
            ("Czechia", "CZ"),
            ("South Korea", "KR"),
            ("Korea, Republic of", "KR"),
            ("North Korea", "KP"),
            ("Russia", "RU"),
            ("Turkey", "TR"),
            ("Türkiye", "TR"),
            ("Turkiye", "TR"),
            ("Ivory Coast", "CI"),
            ("Côte d'Ivoire", "CI"),
            ("Cote dIvoire", "CI"),
            ("Bosnia & Herzegovina", "BA"),
            ("Trinidad & Tobago", "TT"),
            ("St. Lucia", "LC"),
            ("St Kitts and Nevis", "KN"),
            ("Saint Vincent and the Grenadines", "VC"),
            ("Democratic Republic of the Congo", "CD"),
            ("Congo", "CG"),
            ("Guinea-Bissau", "GW"),
            ("Guinea Bissau", "GW"),
            ("Bahamas (the)", "BS"),
            ("The Gambia", "GM"),
            ("Viet Nam", "VN"),
            ("  new   ZEALAND ", "NZ"),
            ("Sao Tome and Principe", "ST"),
            ("Åland Islands", "AX"),
            ("Aland Islands", "AX"),
            // Danish
            ("Danmark", "DK"),
            ("Tyskland", "DE"),
            ("Storbritannien", "GB"),
            ("Frankrig", "FR"),
            ("Østrig", "AT"),
            ("Grækenland", "GR"),
            ("Holland", "NL"),
            ("Nederlandene", "NL"),
            ("Færøerne", "FO"),
            ("Faeroerne", "FO"),
            ("Færoerne", "FO"),
            ("Grønland", "GL"),
            ("Gronland", "GL"),
            ("Groenland", "GL"),
            ("Island", "IS"),
            ("Tjekkiet", "CZ"),
            ("Hviderusland", "BY"),
            ("Rumænien", "RO"),
            ("Sydkorea", "KR"),
            ("Kina", "CN"),
            ("De Forenede Arabiske Emirater", "AE"),
            // Swedish
            ("Sverige", "SE"),
            ("Österrike", "AT"),
            ("Osterrike", "AT"),
            ("Frankrike", "FR"),
            ("Färöarna", "FO"),
            ("Nederländerna", "NL"),
            ("Storbritannien", "GB"),
            ("Förenade kungariket", "GB"),
            ("Tjeckien", "CZ"),
            ("Ryssland", "RU"),
            ("Nya Zeeland", "NZ"),
            ("Saudiarabien", "SA"),
            // Norwegian
            ("Norge", "NO"),
            ("Østerrike", "AT"),
            ("Oesterrike", "AT"),
            ("Storbritannia", "GB"),
            ("Hellas", "GR"),
            ("Tsjekkia", "CZ"),
            ("Sveits", "CH"),
            ("Færøyene", "FO"),
            ("Sør-Korea", "KR"),
            ("Sør Afrika", "ZA"),
            ("Sor-Afrika", "ZA"),
            // German
            ("Deutschland", "DE"),
            ("Österreich", "AT"),
            ("Oesterreich", "AT"),
            ("Osterreich", "AT"),
            ("O\u{308}sterreich", "AT"),
            ("Schweden", "SE"),
            ("Dänemark", "DK"),
            ("Daenemark", "DK"),
            ("Norwegen", "NO"),
            ("Großbritannien", "GB"),
            ("Grossbritannien", "GB"),
            ("Vereinigtes Königreich", "GB"),
            ("Niederlande", "NL"),
            ("Tschechien", "CZ"),
            ("Weißrussland", "BY"),
            ("Schweiz", "CH"),
            ("Vereinigte Staaten", "US"),
            ("Südkorea", "KR"),
            ("Suedkorea", "KR"),
            ("Türkei", "TR"),
            ("Tuerkei", "TR"),
            ("Ägypten", "EG"),
            // Local names
            ("Suomi", "FI"),
            ("Finland", "FI"),
            ("España", "ES"),
            ("Espana", "ES"),
            ("Polska", "PL"),
            ("Česko", "CZ"),
            ("Cesko", "CZ"),
            ("Magyarország", "HU"),
            ("Éire", "IE"),
            ("Eire", "IE"),
            // Codes
            ("dk", "DK"),
            ("DNK", "DK"),
            ("deu", "DE"),
            ("gb", "GB"),
            ("GBR", "GB"),
            ("usa", "US"),
            (" se ", "SE"),
        ];
        assert!(cases.len() >= 60);
        for (name, code) in cases {
            assert_eq!(to_iso2(name), Some(code), "{name:?}");
        }
    }

    #[test]
    fn unknown_names() {
        for name in [
            "Atlantis",
            "",
            "  ",
            "-",
            "Europe",
            "Scandinavia",
            "XX",
            "XYZ",
            "Danmarkk",
        ] {
            assert_eq!(to_iso2(name), None, "{name:?}");
        }
    }

    #[test]
    fn every_code_maps_to_itself() {
        assert_eq!(COUNTRIES.len(), 249);
        let alpha2: HashSet<_> = COUNTRIES.iter().map(|c| c.0).collect();
        let alpha3: HashSet<_> = COUNTRIES.iter().map(|c| c.1).collect();
        assert_eq!(alpha2.len(), COUNTRIES.len());
        assert_eq!(alpha3.len(), COUNTRIES.len());
        for &(code2, code3, _) in COUNTRIES {
            assert!(code2.len() == 2 && code2.bytes().all(|b| b.is_ascii_uppercase()));
            assert!(code3.len() == 3 && code3.bytes().all(|b| b.is_ascii_uppercase()));
            assert_eq!(to_iso2(code2), Some(code2));
            assert_eq!(to_iso2(&code2.to_lowercase()), Some(code2));
            assert_eq!(to_iso2(code3), Some(code2));
            assert_eq!(to_iso2(&code3.to_lowercase()), Some(code2));
        }
    }

    #[test]
    fn every_listed_name_maps_to_its_country() {
        for &(code, _, names) in COUNTRIES {
            for name in names {
                assert_eq!(to_iso2(name), Some(code), "{name:?}");
                assert_eq!(to_iso2(&name.to_uppercase()), Some(code), "{name:?}");
            }
        }
    }

    #[test]
    fn no_name_belongs_to_two_countries() {
        let (_, conflicts, _) = build();
        assert!(conflicts.is_empty(), "{conflicts:#?}");
    }

    #[test]
    fn ambiguous_folds_are_dropped() {
        let (_, _, ambiguous) = build();
        for key in &ambiguous {
            assert_eq!(to_iso2(key), None, "{key:?}");
        }
    }

    #[test]
    fn keys_normalise_case_space_and_punctuation() {
        assert_eq!(key("  The  Netherlands "), "netherlands");
        assert_eq!(key("Gambia (the)"), "gambia");
        assert_eq!(key("U.S.A."), "usa");
        assert_eq!(key("Bosnia & Herzegovina"), "bosnia and herzegovina");
        assert_eq!(key("Guinea-Bissau"), "guinea bissau");
        assert_eq!(key("Côte d’Ivoire"), "côte divoire");
        assert_eq!(key("O\u{308}STERREICH"), "osterreich");
        assert_eq!(fold("österreich", false), "osterreich");
        assert_eq!(fold("österreich", true), "oesterreich");
        assert_eq!(fold("færøerne", true), "faeroeerne");
        assert_eq!(fold("großbritannien", false), "grossbritannien");
    }
}
