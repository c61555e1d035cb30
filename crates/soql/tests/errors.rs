use soql::{parse, ErrorCode, FieldPath, FieldType, SoqlError};

fn err(q: &str) -> SoqlError {
    parse(q).unwrap_err()
}

#[test]
fn unexpected_token_has_salesforce_layout() {
    let e = err("SELECT Id FORM Contact");
    assert_eq!(e.code, ErrorCode::MalformedQuery);
    assert_eq!(e.code.as_str(), "MALFORMED_QUERY");
    assert_eq!(
        e.message,
        "\nSELECT Id FORM Contact\n          ^\nERROR at Row:1:Column:11\nunexpected token: 'FORM'"
    );
    assert_eq!(e.to_string(), format!("MALFORMED_QUERY: {}", e.message));
}

#[test]
fn unexpected_end_of_input() {
    let e = err("SELECT Id FROM Account WHERE");
    assert_eq!(
        e.message,
        "\nSELECT Id FROM Account WHERE\n                            ^\nERROR at Row:1:Column:29\nunexpected token: '<EOF>'"
    );
}

#[test]
fn caret_on_later_rows_echoes_that_row() {
    let e = err("SELECT Id\nFROM Account\nWHERE Name = = 'x'");
    assert_eq!(
        e.message,
        "\nWHERE Name = = 'x'\n             ^\nERROR at Row:3:Column:14\nunexpected token: '='"
    );
}

#[test]
fn column_positions_of_common_mistakes() {
    let cases = [
        ("SELECT FROM Account", 8, "'FROM'"),
        ("SELECT Id, FROM Account", 12, "'FROM'"),
        ("SELECT Id FROM", 15, "'<EOF>'"),
        ("SELECT Id FROM Account WHERE Name", 34, "'<EOF>'"),
        ("SELECT Id FROM Account WHERE Name 'x'", 35, "''x''"),
        ("SELECT Id FROM Account WHERE (Name = 'x'", 41, "'<EOF>'"),
        ("SELECT Id FROM Account LIMIT x", 30, "'x'"),
        ("SELECT Id FROM Account ORDER Name", 30, "'Name'"),
        ("SELECT Id FROM Account ORDER BY Name NULLS", 43, "'<EOF>'"),
        ("SELECT Id FROM Account extra", 24, "'extra'"),
        ("SELECT Id FROM Account WHERE Name IN 'x'", 38, "''x''"),
        ("SELECT Id Name FROM Account", 11, "'Name'"),
        ("Id FROM Account", 1, "'Id'"),
        ("", 1, "'<EOF>'"),
    ];
    for (q, col, tok) in cases {
        let e = err(q);
        assert_eq!(e.code, ErrorCode::MalformedQuery, "{q}");
        let tail = format!("ERROR at Row:1:Column:{col}\nunexpected token: {tok}");
        assert!(e.message.ends_with(&tail), "{q}: {}", e.message);
    }
}

#[test]
fn unsupported_features_are_clear_malformed_queries() {
    let cases = [
        (
            "SELECT Name, COUNT(Id) FROM Account GROUP BY Name",
            "GROUP BY",
        ),
        (
            "SELECT Id, (SELECT Id FROM Contacts) FROM Account",
            "subqueries",
        ),
        (
            "SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact)",
            "semi-join",
        ),
        ("SELECT MAX(Amount) FROM Opportunity", "MAX()"),
        (
            "SELECT TYPEOF What WHEN Account THEN Name END FROM Event",
            "TYPEOF",
        ),
        (
            "SELECT Id FROM Account WITH DATA CATEGORY Geo__c AT usa__c",
            "WITH",
        ),
        (
            "SELECT Id FROM Account WHERE CALENDAR_YEAR(CreatedDate) = 2024",
            "CALENDAR_YEAR()",
        ),
        ("SELECT COUNT(), Id FROM Account", "COUNT()"),
    ];
    for (q, needle) in cases {
        let e = err(q);
        assert_eq!(e.code, ErrorCode::MalformedQuery, "{q}");
        assert!(e.message.contains(needle), "{q}: {}", e.message);
        assert!(
            e.message.contains("ERROR at Row:1:Column:"),
            "{q}: {}",
            e.message
        );
    }
}

#[test]
fn offset_above_2000_is_out_of_range() {
    let e = err("SELECT Id FROM Account LIMIT 10 OFFSET 2001");
    assert_eq!(e.code.as_str(), "NUMBER_OUTSIDE_VALID_RANGE");
    assert!(e.message.ends_with("Maximum SOQL offset allowed is 2000"));
    assert!(parse("SELECT Id FROM Account OFFSET 2000").is_ok());
}

#[test]
fn illegal_escape_in_string() {
    let e = err(r"SELECT Id FROM Account WHERE Name = 'a\qb'");
    assert_eq!(
        e.message,
        "\nSELECT Id FROM Account WHERE Name = 'a\\qb'\n                                    ^\nERROR at Row:1:Column:37\nInvalid string literal 'a\\qb'. Illegal character sequence '\\q' in string literal."
    );
}

#[test]
fn unterminated_string() {
    let e = err("SELECT Id FROM Account WHERE Name = 'abc");
    assert_eq!(e.code, ErrorCode::MalformedQuery);
    assert!(e.message.contains("Column:37"), "{}", e.message);
}

#[test]
fn invalid_field_helper() {
    let q = "SELECT Id, Foo FROM Contact";
    let path = FieldPath {
        parts: vec!["Foo".into()],
        pos: 11,
    };
    let e = SoqlError::invalid_field(q, &path, "Contact");
    assert_eq!(e.code.as_str(), "INVALID_FIELD");
    assert_eq!(
        e.message,
        "\nSELECT Id, Foo FROM Contact\n           ^\nERROR at Row:1:Column:12\nNo such column 'Foo' on entity 'Contact'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
    );
}

#[test]
fn invalid_type_helper_points_at_object() {
    let q = "SELECT Id FROM Foo WHERE Name = 'x'";
    let e = SoqlError::invalid_type(q, "Foo");
    assert_eq!(e.code, ErrorCode::InvalidType);
    assert_eq!(e.code.as_str(), "INVALID_TYPE");
    assert_eq!(
        e.message,
        "\nSELECT Id FROM Foo WHERE Name = 'x'\n               ^\nERROR at Row:1:Column:16\nsObject type 'Foo' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
    );
}

#[test]
fn bind_propagates_resolver_errors_in_order() {
    let text = "SELECT Id, Bogus FROM Contact WHERE Other = 1";
    let q = parse(text).unwrap();
    let mut seen = Vec::new();
    let e = q
        .bind(|p| {
            seen.push(p.dotted());
            match p.dotted().as_str() {
                "Id" | "Other" => Ok(0usize),
                _ => Err(SoqlError::invalid_field(text, p, "Contact")),
            }
        })
        .unwrap_err();
    assert_eq!(seen, ["Id", "Bogus"]);
    assert_eq!(e.code, ErrorCode::InvalidField);
    assert!(e
        .message
        .contains("Column:12\nNo such column 'Bogus' on entity 'Contact'."));
}

fn typed(text: &str) -> Result<(), SoqlError> {
    let q = parse(text).unwrap();
    q.bind_typed(text, |p| {
        let ty = match p.dotted().to_ascii_lowercase().as_str() {
            "name" => FieldType::Text,
            "createddate" => FieldType::DateTime,
            "closedate" => FieldType::Date,
            "amount" => FieldType::Double,
            "employees" => FieldType::Int,
            "isdeleted" => FieldType::Bool,
            "tags__c" => FieldType::MultiPicklist,
            "starts__c" => FieldType::Time,
            _ => FieldType::Other,
        };
        Ok((p.dotted(), ty))
    })
    .map(|_| ())
}

#[test]
fn typed_binding_accepts_matching_literals() {
    for q in [
        "SELECT Id FROM A WHERE Name = 'x' AND Name != null AND Name IN ('a', null)",
        "SELECT Id FROM A WHERE CreatedDate > 2024-01-01T00:00:00Z AND CreatedDate = TODAY",
        "SELECT Id FROM A WHERE CloseDate >= 2024-01-01 AND CloseDate < LAST_N_DAYS:3",
        "SELECT Id FROM A WHERE Amount > 5 AND Amount < 10.5 AND Employees IN (1, 2.0)",
        "SELECT Id FROM A WHERE IsDeleted = false AND Tags__c INCLUDES ('a;b')",
        "SELECT Id FROM A WHERE Starts__c > 10:00:00.000Z AND Name LIKE 'a%'",
        "SELECT Id FROM A WHERE Whatever = 1 AND Whatever LIKE 'x' AND Whatever INCLUDES ('y')",
    ] {
        assert_eq!(typed(q), Ok(()), "{q}");
    }
}

#[test]
fn typed_binding_rejects_mismatches() {
    let cases = [
        (
            "SELECT Id FROM A WHERE Name = 5",
            "field 'Name' must be of type string and should be enclosed in quotes",
        ),
        (
            "SELECT Id FROM A WHERE CreatedDate > 2024-01-01",
            "field 'CreatedDate' must be of type dateTime and should not be enclosed in quotes",
        ),
        (
            "SELECT Id FROM A WHERE CreatedDate > '2024-01-01T00:00:00Z'",
            "must be of type dateTime and should not be enclosed in quotes",
        ),
        (
            "SELECT Id FROM A WHERE CloseDate = 2024-01-01T00:00:00Z",
            "field 'CloseDate' must be of type date and should not",
        ),
        (
            "SELECT Id FROM A WHERE Amount = '5'",
            "field 'Amount' must be of type double",
        ),
        (
            "SELECT Id FROM A WHERE Employees IN (1, 'x')",
            "field 'Employees' must be of type integer",
        ),
        (
            "SELECT Id FROM A WHERE IsDeleted = 'true'",
            "field 'IsDeleted' must be of type boolean",
        ),
    ];
    for (q, needle) in cases {
        let e = typed(q).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidField, "{q}");
        assert!(e.message.contains(needle), "{q}: {}", e.message);
        assert!(
            e.message.contains("ERROR at Row:1:Column:24"),
            "{q}: {}",
            e.message
        );
    }
    let e = typed("SELECT Id FROM A WHERE Amount LIKE '5%'").unwrap_err();
    assert_eq!(e.code.as_str(), "INVALID_QUERY_FILTER_OPERATOR");
    let e = typed("SELECT Id FROM A WHERE Name INCLUDES ('a')").unwrap_err();
    assert_eq!(e.code.as_str(), "INVALID_QUERY_FILTER_OPERATOR");
    assert!(e
        .message
        .ends_with("includes or excludes operator only valid on multipicklist field"));
}

#[test]
fn field_type_from_describe() {
    assert_eq!(FieldType::from_describe("string"), FieldType::Text);
    assert_eq!(FieldType::from_describe("reference"), FieldType::Id);
    assert_eq!(FieldType::from_describe("id"), FieldType::Id);
    assert_eq!(FieldType::from_describe("datetime"), FieldType::DateTime);
    assert_eq!(FieldType::from_describe("date"), FieldType::Date);
    assert_eq!(FieldType::from_describe("currency"), FieldType::Double);
    assert_eq!(FieldType::from_describe("int"), FieldType::Int);
    assert_eq!(FieldType::from_describe("boolean"), FieldType::Bool);
    assert_eq!(
        FieldType::from_describe("multipicklist"),
        FieldType::MultiPicklist
    );
    assert_eq!(FieldType::from_describe("time"), FieldType::Time);
    assert_eq!(FieldType::from_describe("address"), FieldType::Other);
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep = format!(
        "SELECT Id FROM A WHERE {}Name = 'x'{}",
        "(".repeat(40_000),
        ")".repeat(40_000)
    );
    let e = soql::parse(&deep).unwrap_err();
    assert_eq!(e.code.as_str(), "MALFORMED_QUERY");
    assert!(e.message.contains("nested more than"), "{}", e.message);
    let nots = format!("SELECT Id FROM A WHERE {}Name = 'x'", "NOT ".repeat(20_000));
    assert_eq!(
        soql::parse(&nots).unwrap_err().code.as_str(),
        "MALFORMED_QUERY"
    );
    let fine = format!(
        "SELECT Id FROM A WHERE {}Name = 'x'{}",
        "(".repeat(50),
        ")".repeat(50)
    );
    assert!(soql::parse(&fine).is_ok());
}

/// Random token soup never panics the parser or binder: it parses or gives an error.
#[test]
fn random_input_never_panics() {
    const PIECES: &[&str] = &[
        "SELECT",
        "FROM",
        "WHERE",
        "ORDER BY",
        "LIMIT",
        "OFFSET",
        "AND",
        "OR",
        "NOT",
        "(",
        ")",
        ",",
        "Id",
        "Name",
        "Account.Name",
        "=",
        "!=",
        "<",
        ">=",
        "LIKE",
        "IN",
        "NOT IN",
        "'x'",
        "'%a_'",
        "'\\'",
        "'",
        "null",
        "true",
        "42",
        "-1.5",
        "2024-01-01",
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00.123456+05:30",
        "TODAY",
        "LAST_N_DAYS:7",
        "LAST_N_DAYS:",
        "COUNT()",
        "COUNT(Id)",
        "FIELDS(ALL)",
        "ASC",
        "DESC",
        "NULLS FIRST",
        "NULLS LAST",
        "A",
        "INCLUDES",
        "'a;b'",
        "é",
        "\u{0}",
        ".",
        "..",
        ":",
        "ROLLUP",
    ];
    let mut seed: u64 = 0x5eed;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    for _ in 0..20_000 {
        let n = next() % 14;
        let mut q = String::from(if next() % 4 == 0 {
            ""
        } else {
            "SELECT Id FROM A "
        });
        for _ in 0..n {
            q.push_str(PIECES[next() % PIECES.len()]);
            q.push(' ');
        }
        if let Ok(parsed) = soql::parse(&q) {
            let _ = parsed.bind(|p| Ok::<String, soql::SoqlError>(p.dotted()));
        }
    }
}
