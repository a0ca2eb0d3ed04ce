//! One test per row of the selection table (docs/design.md §5), plus priority,
//! aliases, trimming and errors.

use super::*;
use std::path::Path;

fn env(pairs: &[(&str, &str)]) -> Environment {
    Environment::from_pairs(pairs.iter().copied())
}

fn cwd() -> &'static Path {
    Path::new("/srv/app")
}

const PG: (&str, &str) = ("PGSTORE_DSN", "postgresql://u:pw-secret@db:5432/app");
const OBJECT: [(&str, &str); 4] = [
    ("OBJECTSTORE_ENDPOINT", "http://127.0.0.1:9000"),
    ("OBJECTSTORE_BUCKET", "tokens"),
    ("OBJECTSTORE_ACCESS_KEY", "AKIAEXAMPLE"),
    ("OBJECTSTORE_SECRET_KEY", "s3-secret-value"),
];
const GIT: [(&str, &str); 2] = [
    ("GITSTORE_GIT_URL", "https://git.example/org/repo.git"),
    ("GITSTORE_GIT_TOKEN", "ghp-secret"),
];

#[test]
fn nothing_set_selects_local_in_cwd() {
    let s = select(&env(&[]), cwd()).unwrap();
    assert!(matches!(s.backend, BackendChoice::Local));
    assert_eq!(s.workspace, Path::new("/srv/app/localstore"));
    assert!(s.ignored.is_empty());
}

#[test]
fn localstore_path_names_the_workspace() {
    let s = select(&env(&[("LOCALSTORE_PATH", "/data/store")]), cwd()).unwrap();
    assert_eq!(s.workspace, Path::new("/data/store"));
    let s = select(&env(&[("LOCALSTORE_PATH", "rel")]), cwd()).unwrap();
    assert_eq!(s.workspace, Path::new("/srv/app/rel"));
}

#[test]
fn writable_path_is_the_parent_of_default_workspaces() {
    let s = select(&env(&[("WRITABLE_PATH", "/var/lib/x")]), cwd()).unwrap();
    assert_eq!(s.workspace, Path::new("/var/lib/x/localstore"));
    let s = select(&env(&[PG, ("WRITABLE_PATH", "/var/lib/x")]), cwd()).unwrap();
    assert_eq!(s.workspace, Path::new("/var/lib/x/pgstore"));
}

#[test]
fn postgres_defaults() {
    let s = select(&env(&[PG]), cwd()).unwrap();
    let BackendChoice::Postgres(pg) = &s.backend else {
        panic!("{s:?}")
    };
    assert_eq!(pg.schema, "public");
    assert_eq!(pg.dsn.expose(), PG.1);
    assert_eq!(s.workspace, Path::new("/srv/app/pgstore"));
}

#[test]
fn postgres_schema_and_local_path() {
    let s = select(
        &env(&[
            PG,
            ("PGSTORE_SCHEMA", " tenant_a "),
            ("PGSTORE_LOCAL_PATH", "/data/pg"),
        ]),
        cwd(),
    )
    .unwrap();
    let BackendChoice::Postgres(pg) = &s.backend else {
        panic!()
    };
    assert_eq!(pg.schema, "tenant_a");
    assert_eq!(s.workspace, Path::new("/data/pg"));
}

#[test]
fn postgres_keyword_dsn_is_accepted_and_garbage_refused() {
    assert!(
        select(
            &env(&[("PGSTORE_DSN", "host=/run/pg user=app password=x")]),
            cwd()
        )
        .is_ok()
    );
    let err = select(&env(&[("PGSTORE_DSN", "mysql://u:hunter2@h/db")]), cwd()).unwrap_err();
    assert!(matches!(
        err,
        SelectionError::Malformed {
            variable: "PGSTORE_DSN",
            ..
        }
    ));
    assert!(!err.to_string().contains("hunter2"));
    let err = select(&env(&[("PGSTORE_DSN", "just words")]), cwd()).unwrap_err();
    assert!(matches!(
        err,
        SelectionError::Malformed {
            variable: "PGSTORE_DSN",
            ..
        }
    ));
}

#[test]
fn object_settings_and_defaults() {
    let s = select(&env(&OBJECT), cwd()).unwrap();
    let BackendChoice::Object(o) = &s.backend else {
        panic!()
    };
    assert_eq!(
        o.endpoint,
        ObjectEndpoint {
            tls: false,
            authority: "127.0.0.1:9000".into()
        }
    );
    assert_eq!(o.bucket, "tokens");
    assert_eq!(o.region, "us-east-1");
    assert_eq!(s.workspace, Path::new("/srv/app/objectstore"));
    let mut vars = OBJECT.to_vec();
    vars.push(("OBJECTSTORE_LOCAL_PATH", "/data/obj"));
    vars.push(("OBJECTSTORE_REGION", "eu-west-1"));
    let s = select(&env(&vars), cwd()).unwrap();
    assert_eq!(s.workspace, Path::new("/data/obj"));
    let BackendChoice::Object(o) = &s.backend else {
        panic!()
    };
    assert_eq!(o.region, "eu-west-1");
}

#[test]
fn object_endpoint_forms() {
    let cases = [
        ("https://s3.amazonaws.com", true, "s3.amazonaws.com"),
        ("http://localhost:9000/", false, "localhost:9000"),
        ("s3.amazonaws.com", true, "s3.amazonaws.com"),
        (
            "nyc3.digitaloceanspaces.com/",
            true,
            "nyc3.digitaloceanspaces.com",
        ),
        ("HTTP://[::1]:9000", false, "[::1]:9000"),
    ];
    for (value, tls, authority) in cases {
        let endpoint = validate::parse_endpoint(value).unwrap();
        assert_eq!(
            endpoint,
            ObjectEndpoint {
                tls,
                authority: authority.into()
            },
            "{value}"
        );
    }
    for bad in [
        "ftp://host",
        "https://",
        "https://host/bucket",
        "http://host:port",
        "https://u:p@host",
    ] {
        assert!(validate::parse_endpoint(bad).is_err(), "{bad}");
    }
}

#[test]
fn object_requires_every_variable_and_names_the_missing_one() {
    for missing in [
        "OBJECTSTORE_BUCKET",
        "OBJECTSTORE_ACCESS_KEY",
        "OBJECTSTORE_SECRET_KEY",
    ] {
        let vars: Vec<_> = OBJECT
            .iter()
            .copied()
            .filter(|(k, _)| *k != missing)
            .collect();
        let err = select(&env(&vars), cwd()).unwrap_err();
        assert_eq!(
            err,
            SelectionError::Missing {
                variable: missing,
                because: "OBJECTSTORE_ENDPOINT"
            }
        );
        assert!(err.to_string().contains(missing));
    }
}

#[test]
fn object_bucket_names_are_checked() {
    let mut vars = OBJECT.to_vec();
    vars[1] = ("OBJECTSTORE_BUCKET", "Bad_Bucket");
    let err = select(&env(&vars), cwd()).unwrap_err();
    assert!(matches!(
        err,
        SelectionError::Malformed {
            variable: "OBJECTSTORE_BUCKET",
            ..
        }
    ));
}

#[test]
fn git_settings_and_defaults() {
    let s = select(&env(&GIT), cwd()).unwrap();
    let BackendChoice::Git(g) = &s.backend else {
        panic!()
    };
    assert_eq!(g.username, "git");
    assert_eq!(g.branch, None);
    assert_eq!(g.token.expose(), "ghp-secret");
    assert_eq!(s.workspace, Path::new("/srv/app/gitstore"));
    let mut vars = GIT.to_vec();
    vars.extend([
        ("GITSTORE_GIT_USERNAME", "oauth2"),
        ("GITSTORE_GIT_BRANCH", "tokens/main"),
        ("GITSTORE_LOCAL_PATH", "/data/git"),
    ]);
    let s = select(&env(&vars), cwd()).unwrap();
    let BackendChoice::Git(g) = &s.backend else {
        panic!()
    };
    assert_eq!(g.username, "oauth2");
    assert_eq!(g.branch.as_deref(), Some("tokens/main"));
    assert_eq!(s.workspace, Path::new("/data/git"));
    assert!(!g.squash, "history is kept by default");
}

#[test]
fn git_squash_is_a_boolean() {
    for (value, squash) in [
        ("true", true),
        ("TRUE", true),
        ("1", true),
        ("false", false),
        ("no", false),
    ] {
        let mut vars = GIT.to_vec();
        vars.push(("GITSTORE_SQUASH", value));
        let s = select(&env(&vars), cwd()).unwrap();
        let BackendChoice::Git(g) = &s.backend else {
            panic!()
        };
        assert_eq!(g.squash, squash, "{value}");
    }
    let mut vars = GIT.to_vec();
    vars.push(("GITSTORE_SQUASH", "sometimes"));
    let err = select(&env(&vars), cwd()).unwrap_err();
    assert!(err.to_string().contains("GITSTORE_SQUASH"), "{err}");
}

#[test]
fn git_requires_a_token_and_a_clean_url_and_branch() {
    let err = select(&env(&GIT[..1]), cwd()).unwrap_err();
    assert_eq!(
        err,
        SelectionError::Missing {
            variable: "GITSTORE_GIT_TOKEN",
            because: "GITSTORE_GIT_URL"
        }
    );
    let err = select(
        &env(&[("GITSTORE_GIT_URL", "https://u:tok@h/r.git"), GIT[1]]),
        cwd(),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        SelectionError::Malformed {
            variable: "GITSTORE_GIT_URL",
            ..
        }
    ));
    assert!(!err.to_string().contains("tok@"));
    let err = select(
        &env(&[("GITSTORE_GIT_URL", "git@host:org/repo.git"), GIT[1]]),
        cwd(),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        SelectionError::Malformed {
            variable: "GITSTORE_GIT_URL",
            ..
        }
    ));
    let err = select(
        &env(&[GIT[0], GIT[1], ("GITSTORE_GIT_BRANCH", "bad..name")]),
        cwd(),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        SelectionError::Malformed {
            variable: "GITSTORE_GIT_BRANCH",
            ..
        }
    ));
}

#[test]
fn priority_is_postgres_then_object_then_git_and_losers_are_named() {
    let mut all = vec![PG];
    all.extend(OBJECT);
    all.extend(GIT);
    all.push(("LOCALSTORE_PATH", "/x"));
    let s = select(&env(&all), cwd()).unwrap();
    assert_eq!(s.backend.kind(), BackendKind::Postgres);
    assert_eq!(
        s.ignored,
        [BackendKind::Object, BackendKind::Git, BackendKind::Local]
    );
    let line = s.explain();
    assert!(
        line.contains("PGSTORE_DSN is set") && line.contains("object (OBJECTSTORE_ENDPOINT)"),
        "{line}"
    );
    assert!(!line.contains("pw-secret"));

    let mut object_git: Vec<_> = OBJECT.to_vec();
    object_git.extend(GIT);
    let s = select(&env(&object_git), cwd()).unwrap();
    assert_eq!(s.backend.kind(), BackendKind::Object);
    assert_eq!(s.ignored, [BackendKind::Git]);
}

#[test]
fn lowercase_aliases_and_trimming() {
    let s = select(
        &env(&[
            ("pgstore_dsn", "  postgres://u:p@h/db  "),
            ("pgstore_schema", "s1"),
        ]),
        cwd(),
    )
    .unwrap();
    let BackendChoice::Postgres(pg) = &s.backend else {
        panic!()
    };
    assert_eq!(pg.dsn.expose(), "postgres://u:p@h/db");
    assert_eq!(pg.schema, "s1");
}

#[test]
fn blank_upper_case_falls_through_to_the_alias() {
    let s = select(
        &env(&[("PGSTORE_DSN", "   "), ("pgstore_dsn", "postgres://h/db")]),
        cwd(),
    )
    .unwrap();
    assert_eq!(s.backend.kind(), BackendKind::Postgres);
    let s = select(&env(&[("PGSTORE_DSN", "   ")]), cwd()).unwrap();
    assert_eq!(s.backend.kind(), BackendKind::Local);
}

#[test]
fn debug_output_never_shows_secrets() {
    let mut all = vec![PG];
    all.extend(OBJECT);
    for vars in [vec![PG], OBJECT.to_vec(), GIT.to_vec()] {
        let s = select(&env(&vars), cwd()).unwrap();
        let shown = format!("{s:?} {}", s.explain());
        for secret in ["pw-secret", "s3-secret-value", "ghp-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}

#[test]
fn a_remote_backend_migrates_from_where_the_local_store_was() {
    let s = select(&env(&[PG]), cwd()).unwrap();
    assert_eq!(
        s.migrate_from.as_deref(),
        Some(Path::new("/srv/app/localstore"))
    );
    let s = select(&env(&[PG, ("WRITABLE_PATH", "/data")]), cwd()).unwrap();
    assert_eq!(
        s.migrate_from.as_deref(),
        Some(Path::new("/data/localstore"))
    );
    let s = select(&env(&[PG, ("LOCALSTORE_PATH", "/old/store")]), cwd()).unwrap();
    assert_eq!(s.migrate_from.as_deref(), Some(Path::new("/old/store")));
    let s = select(&env(&[("LOCALSTORE_PATH", "/old/store")]), cwd()).unwrap();
    assert_eq!(s.migrate_from, None, "the local backend is that store");
}

#[test]
fn a_dsn_url_with_a_bad_port_or_spaces_is_refused_at_selection_without_the_password() {
    for good in [
        "postgresql://app:pw@db.example:5432/app?sslmode=require",
        "postgres://app:p%40ss@[::1]:6543/app",
        "postgresql://app:pw@/app?host=/cloudsql/project:region:instance",
        "postgresql://app:pw@h1:5432,h2:5433/app",
        "postgresql://db.example/app",
    ] {
        assert!(
            select(&env(&[("PGSTORE_DSN", good)]), cwd()).is_ok(),
            "{good}"
        );
    }
    for bad in [
        "postgresql://app:hunter2@db.example:54x2/app",
        "postgresql://app:hunter2@db.example:99999/app",
        "postgresql://app:hunter2@db.example:/app",
        "postgresql://app:hunter2@db example/app",
    ] {
        let err = select(&env(&[("PGSTORE_DSN", bad)]), cwd()).unwrap_err();
        assert!(
            matches!(
                err,
                SelectionError::Malformed {
                    variable: "PGSTORE_DSN",
                    ..
                }
            ),
            "{bad}: {err}"
        );
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}

#[test]
fn a_git_url_with_spaces_or_a_bad_port_is_refused_at_selection() {
    for bad in [
        "https://git.example/org/my repo.git",
        "https://git.example:80x/org/repo.git",
        "https://git.example:0/org/repo.git",
    ] {
        let err = select(&env(&[("GITSTORE_GIT_URL", bad), GIT[1]]), cwd()).unwrap_err();
        assert!(
            matches!(
                err,
                SelectionError::Malformed {
                    variable: "GITSTORE_GIT_URL",
                    ..
                }
            ),
            "{bad}: {err}"
        );
    }
    let good = "https://git.example:8443/org/repo.git";
    assert!(select(&env(&[("GITSTORE_GIT_URL", good), GIT[1]]), cwd()).is_ok());
}
