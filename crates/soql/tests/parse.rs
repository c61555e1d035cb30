use chrono::NaiveDate;
use soql::{
    parse, CompareOp, DateFunction, Expr, FieldPath, FieldsKind, Literal, NullsOrder, Operand,
    OrderItem, SelectItem,
};

fn fp(parts: &[&str], pos: usize) -> FieldPath {
    FieldPath {
        parts: parts.iter().map(|s| s.to_string()).collect(),
        pos,
    }
}

/// The single literal of `SELECT Id FROM X WHERE F = <lit>`.
fn lit(text: &str) -> Literal {
    let q = parse(&format!("SELECT Id FROM X WHERE F = {text}")).unwrap();
    match q.where_clause {
        Some(Expr::Compare {
            value: Operand::Single(l),
            ..
        }) => l,
        other => panic!("unexpected where: {other:?}"),
    }
}

fn ms(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, milli: u32) -> i64 {
    NaiveDate::from_ymd_opt(y, mo, d)
        .unwrap()
        .and_hms_milli_opt(h, mi, s, milli)
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

#[test]
fn basic_select() {
    let q = parse("SELECT Id, Name, Account.Owner.Name FROM Contact").unwrap();
    assert_eq!(
        q.select,
        vec![
            SelectItem::Field(fp(&["Id"], 7)),
            SelectItem::Field(fp(&["Name"], 11)),
            SelectItem::Field(fp(&["Account", "Owner", "Name"], 17)),
        ]
    );
    assert_eq!(q.from, "Contact");
    assert_eq!(q.from_pos, 41);
    assert_eq!(q.where_clause, None);
    assert!(q.order_by.is_empty());
    assert_eq!((q.limit, q.offset), (None, None));
    assert!(!q.is_count());
}

#[test]
fn keywords_are_case_insensitive_identifiers_keep_case() {
    let q =
        parse("select id, NAME from contact__C where name like 'a%' order by NAME desc limit 5")
            .unwrap();
    assert_eq!(q.from, "contact__C");
    assert_eq!(q.select[1], SelectItem::Field(fp(&["NAME"], 11)));
    assert_eq!(q.limit, Some(5));
    assert!(q.order_by[0].descending);
}

#[test]
fn whitespace_and_newlines_anywhere() {
    let q =
        parse("\n  SELECT\n\tId ,\r\n Name\nFROM\n  Account\nWHERE\n (Name='x'\n)\nLIMIT\n10\n")
            .unwrap();
    assert_eq!(q.from, "Account");
    assert_eq!(q.limit, Some(10));
    assert_eq!(q.select.len(), 2);
}

#[test]
fn count_and_fields() {
    let q = parse("SELECT COUNT() FROM Account").unwrap();
    assert_eq!(q.select, vec![SelectItem::Count]);
    assert!(q.is_count());
    let q = parse("SELECT count(Id) FROM Account").unwrap();
    assert_eq!(q.select, vec![SelectItem::CountField(fp(&["Id"], 13))]);
    let q = parse("SELECT FIELDS(ALL) FROM Account LIMIT 200").unwrap();
    assert_eq!(q.select, vec![SelectItem::Fields(FieldsKind::All)]);
    let q = parse("SELECT Id, fields(standard), FIELDS(Custom) FROM Account").unwrap();
    assert_eq!(q.select[1], SelectItem::Fields(FieldsKind::Standard));
    assert_eq!(q.select[2], SelectItem::Fields(FieldsKind::Custom));
}

#[test]
fn literal_forms() {
    assert_eq!(lit("null"), Literal::Null);
    assert_eq!(lit("NULL"), Literal::Null);
    assert_eq!(lit("true"), Literal::Bool(true));
    assert_eq!(lit("FALSE"), Literal::Bool(false));
    assert_eq!(lit("42"), Literal::Int(42));
    assert_eq!(lit("-42"), Literal::Int(-42));
    assert_eq!(lit("+7"), Literal::Int(7));
    assert_eq!(lit("3.5"), Literal::Decimal(3.5));
    assert_eq!(lit("-0.25"), Literal::Decimal(-0.25));
    assert_eq!(lit("99999999999999999999"), Literal::Decimal(1e20));
    assert_eq!(lit("'abc'"), Literal::Text("abc".into()));
    assert_eq!(lit("''"), Literal::Text(String::new()));
    assert_eq!(
        lit(r#"'O\'Brien \"q\" back\\slash\nnl\ttab \u00e9'"#),
        Literal::Text("O'Brien \"q\" back\\slash\nnl\ttab é".into())
    );
    assert_eq!(lit("'日本'"), Literal::Text("日本".into()));
    assert_eq!(
        lit("2024-02-29"),
        Literal::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap())
    );
}

#[test]
fn datetime_literal_forms() {
    let base = ms(2024, 1, 1, 0, 0, 0, 0);
    for text in [
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00.000Z",
        "2024-01-01T00:00:00.000000Z",
        "2024-01-01T00:00:00+00:00",
        "2024-01-01T00:00:00.000+0000",
        "2024-01-01T00:00:00-00:00",
        "2024-01-01T00:00:00.000000+00:00",
        "2024-01-01t00:00:00z",
    ] {
        assert_eq!(lit(text), Literal::DateTime(base), "{text}");
    }
    assert_eq!(
        lit("2024-01-01T00:00:00-05:00"),
        Literal::DateTime(ms(2024, 1, 1, 5, 0, 0, 0))
    );
    assert_eq!(
        lit("2024-01-01T10:00:00+0530"),
        Literal::DateTime(ms(2024, 1, 1, 4, 30, 0, 0))
    );
    assert_eq!(
        lit("2024-01-01T10:00:00+05"),
        Literal::DateTime(ms(2024, 1, 1, 5, 0, 0, 0))
    );
    assert_eq!(
        lit("2024-06-30T23:59:59.123Z"),
        Literal::DateTime(ms(2024, 6, 30, 23, 59, 59, 123))
    );
    assert_eq!(
        lit("2024-06-30T23:59:59.123456+00:00"),
        Literal::DateTime(ms(2024, 6, 30, 23, 59, 59, 123))
    );
    assert_eq!(lit("1969-12-31T23:59:59.5Z"), Literal::DateTime(-500));
    assert_eq!(lit("10:30:00.000Z"), Literal::Time(37_800_000));
    assert_eq!(lit("10:30:00Z"), Literal::Time(37_800_000));
}

#[test]
fn bad_temporal_literals_are_malformed() {
    for text in [
        "2024-13-01",
        "2024-02-30",
        "2024-01-01T25:00:00Z",
        "2024-01-01T00:00:00+5:00",
        "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00Z",
    ] {
        let e = parse(&format!("SELECT Id FROM X WHERE F = {text}")).unwrap_err();
        assert_eq!(e.code.as_str(), "MALFORMED_QUERY", "{text}");
    }
}

#[test]
fn date_function_literals() {
    use DateFunction::*;
    assert_eq!(lit("TODAY"), Literal::DateFn(Today));
    assert_eq!(lit("yesterday"), Literal::DateFn(Yesterday));
    assert_eq!(lit("TOMORROW"), Literal::DateFn(Tomorrow));
    assert_eq!(lit("LAST_N_DAYS:7"), Literal::DateFn(LastNDays(7)));
    assert_eq!(lit("next_n_days : 3"), Literal::DateFn(NextNDays(3)));
    assert_eq!(lit("N_DAYS_AGO:2"), Literal::DateFn(NDaysAgo(2)));
    assert_eq!(lit("THIS_WEEK"), Literal::DateFn(ThisWeek));
    assert_eq!(lit("LAST_WEEK"), Literal::DateFn(LastWeek));
    assert_eq!(lit("THIS_MONTH"), Literal::DateFn(ThisMonth));
    assert_eq!(lit("LAST_MONTH"), Literal::DateFn(LastMonth));
    assert_eq!(lit("THIS_YEAR"), Literal::DateFn(ThisYear));
    assert_eq!(lit("LAST_90_DAYS"), Literal::DateFn(Last90Days));
    assert_eq!(lit("LAST_N_MONTHS:6"), Literal::DateFn(LastNMonths(6)));
    assert_eq!(lit("N_YEARS_AGO:1"), Literal::DateFn(NYearsAgo(1)));
    assert_eq!(lit("THIS_QUARTER"), Literal::DateFn(ThisQuarter));
    assert!(parse("SELECT Id FROM X WHERE F = LAST_N_DAYS").is_err());
    assert!(parse("SELECT Id FROM X WHERE F = LAST_N_DAYS:x").is_err());
    assert!(parse("SELECT Id FROM X WHERE F = SOMEDAY").is_err());
}

fn cmp(path: &str, pos: usize, op: CompareOp, value: Literal) -> Expr {
    Expr::Compare {
        path: fp(&[path], pos),
        op,
        value: Operand::Single(value),
    }
}

#[test]
fn precedence_not_and_or() {
    //          0         1         2         3         4         5
    //          0123456789012345678901234567890123456789012345678901234567
    let q = parse("SELECT Id FROM X WHERE A = 1 OR B = 2 AND NOT C = 3 OR D = 4").unwrap();
    assert_eq!(
        q.where_clause.unwrap(),
        Expr::Or(vec![
            cmp("A", 23, CompareOp::Eq, Literal::Int(1)),
            Expr::And(vec![
                cmp("B", 32, CompareOp::Eq, Literal::Int(2)),
                Expr::Not(Box::new(cmp("C", 46, CompareOp::Eq, Literal::Int(3)))),
            ]),
            cmp("D", 55, CompareOp::Eq, Literal::Int(4)),
        ])
    );
}

#[test]
fn parentheses_override_precedence() {
    let q = parse("SELECT Id FROM X WHERE (A = 1 OR B = 2) AND NOT (C = 3 AND ((D = 4)))").unwrap();
    let Some(Expr::And(parts)) = q.where_clause else {
        panic!("expected AND")
    };
    assert!(matches!(&parts[0], Expr::Or(xs) if xs.len() == 2));
    assert!(matches!(&parts[1], Expr::Not(inner) if matches!(**inner, Expr::And(_))));
}

#[test]
fn operators() {
    let ops = [
        ("=", CompareOp::Eq),
        ("!=", CompareOp::Ne),
        ("<>", CompareOp::Ne),
        ("<", CompareOp::Lt),
        ("<=", CompareOp::Le),
        (">", CompareOp::Gt),
        (">=", CompareOp::Ge),
        ("like", CompareOp::Like),
    ];
    for (text, op) in ops {
        let q = parse(&format!("SELECT Id FROM X WHERE F {text} 'v'")).unwrap();
        assert!(
            matches!(q.where_clause, Some(Expr::Compare { op: o, .. }) if o == op),
            "{text}"
        );
    }
    let q = parse("SELECT Id FROM X WHERE F NOT IN ('a', 'b') AND G IN (1) AND H INCLUDES ('a;b','c') AND I excludes ('d')")
        .unwrap();
    let Some(Expr::And(parts)) = q.where_clause else {
        panic!()
    };
    let expect = [
        (CompareOp::NotIn, 2),
        (CompareOp::In, 1),
        (CompareOp::Includes, 2),
        (CompareOp::Excludes, 1),
    ];
    for (part, (op, n)) in parts.iter().zip(expect) {
        match part {
            Expr::Compare {
                op: o,
                value: Operand::List(l),
                ..
            } => {
                assert_eq!(*o, op);
                assert_eq!(l.len(), n);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn like_pattern_keeps_escapes() {
    let q = parse(r"SELECT Id FROM X WHERE F LIKE '50\%\_x\\y%'").unwrap();
    assert!(matches!(
        q.where_clause,
        Some(Expr::Compare { value: Operand::Single(Literal::Text(ref s)), .. }) if s == r"50\%\_x\\y%"
    ));
    // Outside LIKE the escapes decode to the characters.
    assert_eq!(lit(r"'50\%\_'"), Literal::Text("50%_".into()));
}

#[test]
fn order_limit_offset() {
    let q = parse("SELECT Id FROM X ORDER BY Name ASC NULLS LAST, CreatedDate DESC, Id, Owner.Name desc nulls first LIMIT 100 OFFSET 20").unwrap();
    assert_eq!(
        q.order_by,
        vec![
            OrderItem {
                path: fp(&["Name"], 26),
                descending: false,
                nulls: Some(NullsOrder::Last)
            },
            OrderItem {
                path: fp(&["CreatedDate"], 47),
                descending: true,
                nulls: None
            },
            OrderItem {
                path: fp(&["Id"], 65),
                descending: false,
                nulls: None
            },
            OrderItem {
                path: fp(&["Owner", "Name"], 69),
                descending: true,
                nulls: Some(NullsOrder::First)
            },
        ]
    );
    assert!(q.order_by[0].nulls_last());
    assert!(!q.order_by[1].nulls_last());
    assert_eq!(q.limit, Some(100));
    assert_eq!(q.offset, Some(20));
}

#[test]
fn accepted_and_ignored_clauses() {
    for text in [
        "SELECT Id FROM X WITH SECURITY_ENFORCED",
        "SELECT Id FROM X WHERE A = 1 WITH SECURITY_ENFORCED ORDER BY Id LIMIT 1",
        "SELECT Id FROM X USING SCOPE Everything WHERE A = 1",
        "SELECT Id FROM X LIMIT 1 FOR VIEW",
        "SELECT Id FROM X FOR UPDATE",
        "SELECT Id FROM X ALL ROWS",
    ] {
        assert!(parse(text).is_ok(), "{text}");
    }
}

#[test]
fn field_paths_lists_all_references() {
    let q = parse("SELECT Id, COUNT(Name) FROM X WHERE (A = 1 OR NOT B.C = 2) ORDER BY D").unwrap();
    let names: Vec<String> = q.field_paths().iter().map(|p| p.dotted()).collect();
    assert_eq!(names, ["Id", "Name", "A", "B.C", "D"]);
}

#[test]
fn display_and_quote() {
    assert_eq!(soql::quote("O'Brien"), r"'O\'Brien'");
    assert_eq!(soql::quote("a\\b\n\"c\"\t"), r#"'a\\b\n\"c\"\t'"#);
    for text in [
        "null",
        "true",
        "42",
        "-3.5",
        "'it\\'s'",
        "2024-01-31",
        "2024-01-31T10:20:30Z",
        "2024-01-31T10:20:30.123Z",
        "10:30:00.000Z",
        "TODAY",
        "LAST_N_DAYS:7",
    ] {
        let l = lit(text);
        assert_eq!(l.to_string(), text);
        assert_eq!(lit(&l.to_string()), l);
    }
    assert_eq!(
        lit("2024-01-31T10:20:30-01:00").to_string(),
        "2024-01-31T11:20:30Z"
    );
    assert_eq!(Literal::Decimal(5.0).to_string(), "5.0");
    // Quoted text parses back to itself.
    let nasty = "a'b\\c\"d\ne\tf%_";
    assert_eq!(lit(&soql::quote(nasty)), Literal::Text(nasty.into()));
}

#[test]
fn max_length() {
    let long = format!("SELECT Id FROM X WHERE Name = '{}'", "a".repeat(100_000));
    let e = parse(&long).unwrap_err();
    assert_eq!(e.code.as_str(), "MALFORMED_QUERY");
    assert!(e.message.contains("100000"), "{}", e.message);
    let fits = format!("SELECT Id FROM X WHERE Name = '{}'", "a".repeat(99_000));
    assert!(parse(&fits).is_ok());
}

#[test]
fn order_and_group_are_also_object_and_relationship_names() {
    let q =
        parse("SELECT Id, Order.OrderNumber FROM OrderItem ORDER BY Order.OrderNumber").unwrap();
    assert_eq!(
        q.select[1],
        SelectItem::Field(fp(&["Order", "OrderNumber"], 11))
    );
    assert_eq!(q.order_by[0].path.dotted(), "Order.OrderNumber");
    let q = parse("SELECT Id FROM Order ORDER BY Id").unwrap();
    assert_eq!(q.from, "Order");
    assert_eq!(parse("SELECT Id FROM Group").unwrap().from, "Group");
    assert!(parse("SELECT Id FROM ORDER BY Id").is_err());
    assert!(parse("SELECT FROM Account").is_err());
}

#[test]
fn query_display_round_trips() {
    for text in [
        "SELECT Id, Account.Name, COUNT(Id), FIELDS(ALL) FROM Contact",
        "SELECT COUNT() FROM Contact WHERE Name LIKE 'a\\%b\\_c\\\\d%' AND (A = 1 OR B != null)",
        "SELECT Id FROM X WHERE NOT (A = 1 AND B = 2) OR (NOT C IN ('x', 'y') AND D NOT IN (1, 2.5))",
        "SELECT Id FROM X WHERE T INCLUDES ('a;b', 'c') AND U EXCLUDES ('d') AND D = LAST_N_DAYS:7",
        "SELECT Id FROM X WHERE D > 2024-01-01T10:00:00.123Z AND E <= 2024-01-01 ORDER BY Name DESC NULLS LAST, Id NULLS FIRST LIMIT 10 OFFSET 5",
    ] {
        let q = parse(text).unwrap();
        let shown = q.to_string();
        assert_eq!(shown, text);
        let again = parse(&shown).unwrap();
        assert_eq!(again.where_clause.map(|w| w.to_string()), q.where_clause.map(|w| w.to_string()));
    }
    let q = parse("select id from x where a = 1 and (b = 2 and c = 3)").unwrap();
    assert_eq!(
        q.to_string(),
        "SELECT id FROM x WHERE a = 1 AND (b = 2 AND c = 3)"
    );
}

#[test]
fn mixed_and_or_display_adds_parentheses() {
    let q = parse("SELECT Id FROM X WHERE A = 1 OR B = 2 AND C = 3").unwrap();
    assert_eq!(
        q.to_string(),
        "SELECT Id FROM X WHERE A = 1 OR (B = 2 AND C = 3)"
    );
}
