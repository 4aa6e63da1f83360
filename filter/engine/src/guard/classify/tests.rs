use super::*;

fn pspf() -> Classifier {
    Classifier::compile(&ClassificationDoc::default()).unwrap()
}

fn doc(json: &str) -> ClassificationDoc {
    serde_json::from_str(json).unwrap()
}

fn compile(json: &str) -> Classifier {
    Classifier::compile(&doc(json)).unwrap()
}

fn error(json: &str) -> ConfigError {
    Classifier::compile(&doc(json)).unwrap_err()
}

fn classify(c: &Classifier, text: &str) -> Classification {
    let mut state = c.start();
    c.scan(&mut state, text, "messages[0].content");
    c.finish(state, &[])
}

fn level(c: &Classifier, text: &str) -> String {
    classify(c, text).level_name
}

#[test]
fn the_default_is_the_pspf_ladder_at_its_lowest_level() {
    let c = pspf();
    assert_eq!(c.levels(), PSPF_LEVELS);
    let d = classify(&c, "Please summarise this article about bread.");
    assert_eq!((d.level, d.level_name.as_str(), d.blocked), (0, "UNOFFICIAL", false));
    assert_eq!(d.rationale.len(), 1);
    assert_eq!(d.rationale[0].rule, "default");
    assert_eq!(d.violation(), None);
}

#[test]
fn pspf_marking_variants_set_their_level() {
    let c = pspf();
    let cases = [
        ("UNOFFICIAL", "UNOFFICIAL"),
        ("OFFICIAL", "OFFICIAL"),
        ("OFFICIAL: Sensitive", "OFFICIAL:Sensitive"),
        ("OFFICIAL:Sensitive", "OFFICIAL:Sensitive"),
        ("OFFICIAL : Sensitive", "OFFICIAL:Sensitive"),
        ("OFFICIAL-SENSITIVE", "OFFICIAL:Sensitive"),
        ("OFFICIAL:SENSITIVE", "OFFICIAL:Sensitive"),
        ("OFFICIAL SENSITIVE", "OFFICIAL:Sensitive"),
        ("PROTECTED", "PROTECTED"),
        ("PROTECTED//CABINET", "PROTECTED"),
        ("PROTECTED // NATIONAL CABINET", "PROTECTED"),
        ("PROTECTED: CABINET", "PROTECTED"),
        ("SECRET", "SECRET"),
        ("SECRET//AUSTEO", "SECRET"),
        ("SECRET AUSTEO", "SECRET"),
        ("SECRET//AGAO", "SECRET"),
        ("SECRET//REL AUS/USA", "SECRET"),
        ("SECRET REL TO AUS, NZL", "SECRET"),
        ("TOP SECRET", "TOP SECRET"),
        ("TOP-SECRET", "TOP SECRET"),
        ("TOP  SECRET", "TOP SECRET"),
        ("TOP SECRET//…", "TOP SECRET"),
        ("TOP SECRET//NIGHTJAR//AUSTEO", "TOP SECRET"),
        ("HIGHLY PROTECTED", "SECRET"),
        ("UNCLASSIFIED", "OFFICIAL"),
        ("**PROTECTED**", "PROTECTED"),
        ("# SECRET", "SECRET"),
        ("--- TOP SECRET ---", "TOP SECRET"),
        ("> PROTECTED", "PROTECTED"),
        ("-- PROTECTED --", "PROTECTED"),
        ("- PROTECTED//CABINET", "PROTECTED"),
        ("  PROTECTED  \r", "PROTECTED"),
    ];
    for (text, want) in cases {
        assert_eq!(level(&c, text), want, "{text:?}");
        // The same marking as a banner above and below ordinary text.
        let banner = format!("{text}\nThe minister asked for a summary of the attached brief.\n{text}");
        assert_eq!(level(&c, &banner), want, "banner {text:?}");
    }
}

#[test]
fn markings_inside_prose_positions() {
    let c = pspf();
    let cases = [
        ("Subject: Budget update [PROTECTED]", "PROTECTED"),
        ("(OFFICIAL: Sensitive) The committee met on Tuesday.", "OFFICIAL:Sensitive"),
        ("Please review — this is PROTECTED//CABINET material.", "PROTECTED"),
        ("The file is TOP SECRET//AUSTEO so handle it carefully", "TOP SECRET"),
        ("Mark the reply OFFICIAL: Sensitive before sending it", "OFFICIAL:Sensitive"),
        ("Classification: PROTECTED", "PROTECTED"),
        ("Security classification: Secret", "SECRET"),
        ("Protective marking = official: sensitive", "OFFICIAL:Sensitive"),
        ("classification: top secret", "TOP SECRET"),
    ];
    for (text, want) in cases {
        assert_eq!(level(&c, text), want, "{text:?}");
    }
}

#[test]
fn ordinary_prose_does_not_raise_the_level() {
    let c = pspf();
    let prose = [
        "the secret to good bread is time",
        "Enable a protected branch in git before merging.",
        "Official results are out, and the turnout was high.",
        "TOP SECRET RECIPE!!! You won't believe it",
        "OMG THIS IS TOP SECRET RECIPE!!!",
        "TOP SECRET!!!",
        "keep this secret",
        "Keep this SECRET, ok?",
        "SECRET: don't tell anyone about the party",
        "PROTECTED BRANCH RULES",
        "The OFFICIAL RESULTS are out",
        "OFFICIAL SENSITIVE DOCUMENTS LEAKED, SAYS PAPER",
        "He works in a protected environment; the secret service is official.",
        "class Foo { protected: int x; };",
        "PROTECTED = 3",
        "let SECRET_KEY = env(\"SECRET_KEY\");",
        "TOP_SECRET",
        "UNOFFICIALLY, the secrets are protected.",
        "Top secret: the surprise party is on Friday",
        "This is sensitive: personal matters should stay private",
        "for official use only, the spare key is in the drawer",
        "the confidence interval is wide",
        "SECRETARY of the board",
        "Sensitive: Personalised greetings",
        "fouo is not a word",
        "a SECRET is a SECRET",
        "Secret\nProtected\nOfficial",
        "Levels to learn:\n- UNOFFICIAL\n- OFFICIAL\n- PROTECTED\n- SECRET\n* TOP SECRET\n",
    ];
    for text in prose {
        let d = classify(&c, text);
        assert_eq!(d.level_name, "UNOFFICIAL", "{text:?} -> {:?}", d.rationale);
    }
}

#[test]
fn legacy_dlms_and_caveats() {
    let c = pspf();
    let cases = [
        ("Sensitive: Personal", "OFFICIAL:Sensitive"),
        ("Sensitive:Legal", "OFFICIAL:Sensitive"),
        ("Subject: Leave request - Sensitive: Cabinet", "OFFICIAL:Sensitive"),
        ("SENSITIVE: PERSONAL", "OFFICIAL:Sensitive"),
        ("For Official Use Only", "OFFICIAL:Sensitive"),
        ("This report is FOR OFFICIAL USE ONLY.", "OFFICIAL:Sensitive"),
        ("Distribution: FOUO", "OFFICIAL:Sensitive"),
        ("(FOUO) The plan is attached.", "OFFICIAL:Sensitive"),
        ("STAFF-IN-CONFIDENCE", "OFFICIAL:Sensitive"),
        ("Attached: COMMERCIAL-IN-CONFIDENCE tender", "OFFICIAL:Sensitive"),
        ("[SEC=UNCLASSIFIED, DLM=Sensitive:Personal]", "OFFICIAL:Sensitive"),
        ("[SEC=UNCLASSIFIED, DLM=For-Official-Use-Only]", "OFFICIAL:Sensitive"),
        ("OFFICIAL: Sensitive//Legal-Privilege", "OFFICIAL:Sensitive"),
        ("PROTECTED//CABINET//AUSTEO", "PROTECTED"),
    ];
    for (text, want) in cases {
        assert_eq!(level(&c, text), want, "{text:?}");
    }
    // Caveats name the marking in the rationale but do not change its level.
    let d = classify(&c, "SECRET//AUSTEO//REL AUS/USA");
    assert_eq!(d.rationale[0].detail, "marking SECRET//AUSTEO//REL AUS/USA at messages[0].content");
}

#[test]
fn email_protective_markings() {
    let c = pspf();
    let cases = [
        ("RE: Budget [SEC=PROTECTED, CAVEAT=SH:CABINET]", "PROTECTED", "SEC=PROTECTED, CAVEAT=SH:CABINET"),
        (
            "Leave form [SEC=OFFICIAL:Sensitive, ACCESS=Personal-Privacy]",
            "OFFICIAL:Sensitive",
            "SEC=OFFICIAL:Sensitive, ACCESS=Personal-Privacy",
        ),
        ("X-Protective-Marking: VER=2018.4, NS=gov.au, SEC=PROTECTED", "PROTECTED", "SEC=PROTECTED"),
        (
            "VER=2018.4, NS=gov.au, SEC=SECRET, CAVEAT=RI:AUSTEO, ORIGIN=jane.citizen@example.gov.au",
            "SECRET",
            "SEC=SECRET, CAVEAT=RI:AUSTEO",
        ),
        ("[SEC=OFFICIAL]", "OFFICIAL", "SEC=OFFICIAL"),
        ("[sec=top secret]", "TOP SECRET", "sec=top secret"),
        ("[SEC = protected]", "PROTECTED", "SEC = protected"),
    ];
    for (text, want, marking) in cases {
        let d = classify(&c, text);
        assert_eq!(d.level_name, want, "{text:?}");
        assert_eq!(d.rationale[0].detail, format!("marking {marking} at messages[0].content"), "{text:?}");
    }
    // The originator's address in the header form never reaches the rationale.
    let d = classify(&c, "VER=2018.4, NS=gov.au, SEC=PROTECTED, ORIGIN=jane.citizen@example.gov.au");
    assert!(d.rationale.iter().all(|r| !r.detail.contains("jane")));
    // SEC needs `=` and a word boundary.
    assert_eq!(level(&c, "SEC: protected"), "UNOFFICIAL");
    assert_eq!(level(&c, "XSEC=protected"), "UNOFFICIAL");
}

#[test]
fn a_custom_ladder_recognises_its_own_names() {
    let c = compile(r#"{"levels":["Public","Internal","Confidential","Top Confidential"]}"#);
    assert_eq!(c.levels(), ["Public", "Internal", "Confidential", "Top Confidential"]);
    assert_eq!(level(&c, "Confidential\nThe plan."), "Confidential");
    assert_eq!(level(&c, "CONFIDENTIAL\nThe plan."), "Confidential");
    assert_eq!(level(&c, "TOP CONFIDENTIAL\nThe plan."), "Top Confidential");
    assert_eq!(level(&c, "Subject: plan [INTERNAL]"), "Internal");
    assert_eq!(level(&c, "CONFIDENTIAL//PROJECTX"), "Confidential");
    assert_eq!(level(&c, "Classification: internal"), "Internal");
    assert_eq!(level(&c, "[SEC=confidential]"), "Confidential");
    // Prose and the wrong case do not count.
    assert_eq!(level(&c, "this is confidential between us"), "Public");
    assert_eq!(level(&c, "confidential"), "Public");
    assert_eq!(level(&c, "INTERNAL COMBUSTION ENGINES"), "Public");
    // The PSPF table is off for a custom ladder.
    assert_eq!(level(&c, "TOP SECRET\nFOUO"), "Public");
    // A ladder spelling the PSPF names keeps the PSPF table.
    let same =
        compile(r#"{"levels":["unofficial","official","official: sensitive","protected","secret","top secret"]}"#);
    assert_eq!(level(&same, "OFFICIAL-SENSITIVE"), "official: sensitive");
    assert_eq!(level(&same, "TOP-SECRET"), "top secret");
    // Markings off: only keywords and classes count.
    let off = compile(r#"{"markings":"off"}"#);
    assert_eq!(level(&off, "TOP SECRET"), "UNOFFICIAL");
    let custom_off = compile(r#"{"levels":["A","B"],"markings":"off"}"#);
    assert_eq!(level(&custom_off, "B"), "A");
    // The PSPF ladder can switch to its level names only.
    let names = compile(r#"{"markings":"levels"}"#);
    assert_eq!(level(&names, "OFFICIAL:Sensitive"), "OFFICIAL:Sensitive");
    assert_eq!(level(&names, "TOP SECRET"), "TOP SECRET");
    assert_eq!(level(&names, "FOUO"), "UNOFFICIAL");
}

#[test]
fn keyword_dictionaries_set_minimum_levels() {
    let c = compile(
        r#"{"keywords":[
            {"level":"OFFICIAL:Sensitive","keywords":["budget measure","payroll"]},
            {"level":"PROTECTED","keywords":["NIGHTJAR"],"case_insensitive":false},
            {"level":"official: sensitive","keywords":["c++"]}
        ]}"#,
    );
    assert_eq!(level(&c, "The Budget Measure is due."), "OFFICIAL:Sensitive");
    assert_eq!(level(&c, "payroll run"), "OFFICIAL:Sensitive");
    assert_eq!(level(&c, "payrolls"), "UNOFFICIAL", "word boundary");
    assert_eq!(level(&c, "prepayroll"), "UNOFFICIAL", "word boundary");
    assert_eq!(level(&c, "Operation NIGHTJAR begins"), "PROTECTED");
    assert_eq!(level(&c, "the nightjar is a bird"), "UNOFFICIAL", "case sensitive");
    assert_eq!(level(&c, "I write C++ daily"), "OFFICIAL:Sensitive");
    // The highest rule wins; the rationale names the keyword that set it.
    let d = classify(&c, "payroll for NIGHTJAR");
    assert_eq!(d.level_name, "PROTECTED");
    assert_eq!(
        d.rationale,
        vec![Rationale {
            rule: "keyword",
            level: "PROTECTED".into(),
            detail: "keyword \"NIGHTJAR\" at messages[0].content".into()
        }]
    );
    // A keyword that is also a marking word works both ways.
    let both = compile(r#"{"keywords":[{"level":"OFFICIAL","keywords":["secret"]}]}"#);
    assert_eq!(level(&both, "the secret to good bread"), "OFFICIAL");
    assert_eq!(level(&both, "SECRET//AUSTEO"), "SECRET");
}

#[test]
fn class_minimums_need_their_count() {
    let c = compile(
        r#"{"class_minimums":[
            {"class":"AU_TFN","level":"OFFICIAL:Sensitive"},
            {"class":"EMAIL","min_count":3,"level":"OFFICIAL"},
            {"class":"HEALTH","min_count":2,"level":"PROTECTED"}
        ]}"#,
    );
    let finish = |counts: &[(EntityClass, usize)]| c.finish(c.start(), counts);
    assert_eq!(finish(&[]).level_name, "UNOFFICIAL");
    assert_eq!(finish(&[(EntityClass::Email, 2)]).level_name, "UNOFFICIAL");
    assert_eq!(finish(&[(EntityClass::Email, 3)]).level_name, "OFFICIAL");
    let d = finish(&[(EntityClass::Email, 5), (EntityClass::AuTfn, 1)]);
    assert_eq!(d.level_name, "OFFICIAL:Sensitive");
    assert_eq!(d.rationale.len(), 1);
    assert_eq!(d.rationale[0].rule, "class");
    assert_eq!(d.rationale[0].detail, "class AU_TFN: 1 finding (minimum 1)");
    // Counts of the same class given twice add up.
    let d = finish(&[(EntityClass::Health, 1), (EntityClass::Health, 1)]);
    assert_eq!(d.level_name, "PROTECTED");
    assert_eq!(d.rationale[0].detail, "class HEALTH: 2 findings (minimum 2)");
    // A marking above a class minimum wins, and only it is named.
    let mut state = c.start();
    c.scan(&mut state, "SECRET//AUSTEO", "input");
    let d = c.finish(state, &[(EntityClass::AuTfn, 4)]);
    assert_eq!(d.level_name, "SECRET");
    assert!(d.rationale.iter().all(|r| r.rule == "marking"));
}

#[test]
fn block_at_blocks_at_or_above_the_threshold() {
    let c = compile(r#"{"block_at":"protected"}"#);
    let below = classify(&c, "OFFICIAL: Sensitive");
    assert!(!below.blocked);
    assert_eq!(below.violation(), None);
    let at = classify(&c, "PROTECTED");
    assert!(at.blocked);
    let v = at.violation().unwrap();
    assert_eq!(v.rule, "classification.PROTECTED");
    assert_eq!(v.detail, "request classified PROTECTED; requests classified PROTECTED or higher are blocked");
    let above = classify(&c, "TOP SECRET");
    assert!(above.blocked);
    assert_eq!(above.violation().unwrap().rule, "classification.TOP SECRET");
    assert!(above.violation().unwrap().detail.contains("TOP SECRET"));
    // No threshold, no block.
    assert!(!classify(&pspf(), "TOP SECRET").blocked);
}

#[test]
fn default_level_is_a_floor() {
    let c = compile(r#"{"default_level":"OFFICIAL","block_at":"OFFICIAL"}"#);
    let d = classify(&c, "hello");
    assert_eq!((d.level_name.as_str(), d.blocked), ("OFFICIAL", true));
    assert_eq!(d.rationale[0].rule, "default");
    assert_eq!(d.rationale[0].level, "OFFICIAL");
    // Writing a lower marking does not lower it.
    assert_eq!(level(&c, "UNOFFICIAL"), "OFFICIAL");
    // Evidence above the floor is named.
    let d = classify(&c, "PROTECTED");
    assert_eq!(d.rationale[0].rule, "marking");
}

#[test]
fn config_errors_name_the_path() {
    let e = |json: &str| {
        let err = error(json);
        (err.path, err.message)
    };
    let (path, message) = e(r#"{"block_at":"RESTRICTED"}"#);
    assert_eq!(path, "block_at");
    assert!(message.contains("RESTRICTED") && message.contains("UNOFFICIAL, OFFICIAL"), "{message}");
    assert_eq!(e(r#"{"default_level":"nope"}"#).0, "default_level");
    assert_eq!(
        e(r#"{"keywords":[{"level":"OFFICIAL","keywords":["a"]},{"level":"X","keywords":["b"]}]}"#).0,
        "keywords[1].level"
    );
    assert_eq!(e(r#"{"keywords":[{"level":"OFFICIAL","keywords":[]}]}"#).0, "keywords[0].keywords");
    assert_eq!(e(r#"{"keywords":[{"level":"OFFICIAL","keywords":["a","  "]}]}"#).0, "keywords[0].keywords[1]");
    let (path, message) = e(r#"{"class_minimums":[{"class":"FAX","level":"OFFICIAL"}]}"#);
    assert_eq!(path, "class_minimums[0].class");
    assert!(message.contains("FAX") && message.contains("AU_TFN"), "{message}");
    assert_eq!(e(r#"{"class_minimums":[{"class":"EMAIL","level":"NOPE"}]}"#).0, "class_minimums[0].level");
    assert_eq!(
        e(r#"{"class_minimums":[{"class":"EMAIL","min_count":0,"level":"OFFICIAL"}]}"#).0,
        "class_minimums[0].min_count"
    );
    assert_eq!(e(r#"{"levels":[]}"#).0, "levels");
    assert_eq!(e(r#"{"levels":["A",""]}"#).0, "levels[1]");
    let (path, message) = e(r#"{"levels":["A","B","a"]}"#);
    assert_eq!(path, "levels[2]");
    assert!(message.contains("levels[0]"), "{message}");
    assert_eq!(e(r#"{"levels":["TOP SECRET","TopSecret"]}"#).0, "levels[1]");
    assert_eq!(e(r#"{"levels":["A","B"],"markings":"pspf"}"#).0, "markings");
    assert_eq!(e(r#"{"levels":["A","B"],"block_at":"C"}"#).0, "block_at");
    // Unknown members are refused by serde, for the policy loader to report.
    assert!(serde_json::from_str::<ClassificationDoc>(r#"{"level":[]}"#).is_err());
    assert!(serde_json::from_str::<ClassificationDoc>(r#"{"keywords":[{"level":"A","keywords":[],"x":1}]}"#).is_err());
    assert!(serde_json::from_str::<ClassificationDoc>(r#"{"markings":"loud"}"#).is_err());
}

#[test]
fn the_highest_level_across_parts_wins_and_names_its_location() {
    let c = pspf();
    let mut state = c.start();
    c.scan(&mut state, "OFFICIAL", "messages[0].content");
    c.scan(&mut state, "Nothing here", "messages[1].content");
    c.scan(&mut state, "PROTECTED//CABINET", "messages[2].content");
    c.scan(&mut state, "OFFICIAL: Sensitive", "messages[3].content");
    let d = c.finish(state, &[]);
    assert_eq!(d.level_name, "PROTECTED");
    assert_eq!(
        d.rationale,
        vec![Rationale {
            rule: "marking",
            level: "PROTECTED".into(),
            detail: "marking PROTECTED//CABINET at messages[2].content".into()
        }]
    );
}

#[test]
fn rationale_is_deduplicated_and_capped() {
    let c = compile(&format!(
        r#"{{"keywords":[{{"level":"OFFICIAL","keywords":[{}]}}]}}"#,
        (0..40).map(|i| format!("\"word{i}\"")).collect::<Vec<_>>().join(",")
    ));
    let mut state = c.start();
    for part in 0..3 {
        c.scan(&mut state, "PROTECTED\nmore text\nPROTECTED", format!("messages[{part}].content"));
    }
    c.scan(&mut state, "[SEC=PROTECTED]", "messages[3].content");
    let d = c.finish(state, &[]);
    assert_eq!(
        d.rationale.iter().map(|r| r.detail.as_str()).collect::<Vec<_>>(),
        ["marking PROTECTED at messages[0].content (+5 more)", "marking SEC=PROTECTED at messages[3].content"]
    );
    let many = (0..40).map(|i| format!("word{i}")).collect::<Vec<_>>().join(" ");
    let d = classify(&c, &many);
    assert_eq!(d.rationale.len(), MAX_RATIONALE);
    assert!(d.rationale.iter().all(|r| r.rule == "keyword" && r.level == "OFFICIAL"));
}

#[test]
fn rationale_names_markings_never_surrounding_text() {
    let c = pspf();
    let d = classify(&c, "My TFN is 123 456 782 and this is PROTECTED//CABINET, thanks");
    assert_eq!(d.rationale[0].detail, "marking PROTECTED//CABINET at messages[0].content");
    let d = classify(&c, "Classification:   PROTECTED   \nJane's TFN 123 456 782");
    assert_eq!(d.rationale[0].detail, "marking Classification: PROTECTED at messages[0].content");
    // Long caveat runs are capped.
    let long = format!("SECRET//{}", ["ABCDEFGHIJKLMNOPQRSTUVWXYZ"; 8].join("//"));
    let d = classify(&c, &long);
    assert!(d.rationale[0].detail.len() < 140, "{}", d.rationale[0].detail);
}

#[test]
fn non_ascii_and_edges_do_not_panic() {
    let c = pspf();
    for text in [
        "",
        "S",
        "SECRET",
        "é SECRET é",
        "日本 PROTECTED",
        "PROTECTED日本",
        "—SECRET—",
        "[SEC=",
        "SEC=",
        "TOP ",
        "//",
        "REL AUS",
    ] {
        let _ = classify(&c, text);
    }
    assert_eq!(level(&c, "日本 PROTECTED"), "UNOFFICIAL");
    assert_eq!(level(&c, "PROTECTED日本"), "UNOFFICIAL");
    assert_eq!(level(&c, "« PROTECTED »"), "UNOFFICIAL");
}

#[test]
fn long_texts_are_one_pass() {
    // Many anchor hits on one huge line: every check is bounded, so this
    // finishes quickly and finds the marking at the end.
    let c = pspf();
    let mut text = "secret protected official sensitive ".repeat(30_000);
    text.push_str("\nTOP SECRET//AUSTEO\n");
    assert!(text.len() > 1_000_000);
    let d = classify(&c, &text);
    assert_eq!(d.level_name, "TOP SECRET");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_text_classifies_without_panicking(text in "\\PC{0,200}", cut in 0usize..200) {
            let c = pspf();
            let d = classify(&c, &text);
            prop_assert!(d.level < PSPF_LEVELS.len());
            prop_assert!(!d.rationale.is_empty() && d.rationale.len() <= MAX_RATIONALE);
            // A banner line added anywhere between lines always counts.
            let cut = (0..=cut.min(text.len())).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            let marked = format!("{}\nPROTECTED//CABINET\n{}", &text[..cut], &text[cut..]);
            prop_assert!(classify(&c, &marked).level >= 3);
        }

        #[test]
        fn lowercase_prose_without_labels_stays_unofficial(
            words in proptest::collection::vec(
                prop_oneof![
                    Just("secret"), Just("protected"), Just("official"), Just("sensitive"), Just("top"),
                    Just("the"), Just("is"), Just("cabinet"), Just("austeo"), Just("//"), Just(":"), Just("\n"),
                    Just("-"), Just("*"), Just("in-confidence"), Just("personal"), Just("for official use only"),
                ],
                0..40,
            )
        ) {
            let text = words.join(" ");
            prop_assert_eq!(level(&pspf(), &text), "UNOFFICIAL");
        }
    }
}
