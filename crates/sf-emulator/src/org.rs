//! The emulated org: its objects (schema + rows), ids of the org and its admin user,
//! and the schema's last-modified time.

use crate::catalog;
use crate::schema::ObjectDef;
use crate::store::{SObject, Val};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

pub type ObjRef = Arc<RwLock<SObject>>;

#[derive(Default)]
struct Registry {
    objects: Vec<ObjRef>,
    by_name: HashMap<String, usize>,
    by_prefix: HashMap<[u8; 3], usize>,
}

pub struct Org {
    pub org_id: String,
    pub user_id: String,
    pub username: String,
    registry: RwLock<Registry>,
    schema_modified: AtomicI64,
}

impl Org {
    pub fn new(username: &str) -> Result<Org, crate::Error> {
        let org = Org {
            org_id: crate::ids::make_id(b"00D", 1),
            user_id: crate::ids::make_id(b"005", 1),
            username: username.to_string(),
            registry: RwLock::new(Registry::default()),
            // A fixed, whole-second time so If-Modified-Since round-trips exactly.
            schema_modified: AtomicI64::new(crate::timefmt::wall_ms() / 1000 * 1000),
        };
        for def in catalog::builtin()? {
            org.add_object(def);
        }
        org.create_admin();
        Ok(org)
    }

    fn create_admin(&self) {
        let Some(user) = self.object("User") else {
            return;
        };
        let mut u = user.write();
        let row = u.new_row();
        let now = crate::timefmt::stamp_ms();
        let local = self
            .username
            .split('@')
            .next()
            .unwrap_or("admin")
            .to_string();
        let values: Vec<(&str, Val)> = vec![
            ("Username", Val::Str(self.username.clone())),
            ("LastName", Val::Str("Admin".into())),
            ("FirstName", Val::Str("Emulator".into())),
            ("Alias", Val::Str(local.chars().take(8).collect())),
            ("Email", Val::Str(self.username.clone())),
            ("IsActive", Val::Bool(true)),
            ("TimeZoneSidKey", Val::Str("America/Los_Angeles".into())),
            ("LocaleSidKey", Val::Str("en_US".into())),
            ("EmailEncodingKey", Val::Str("UTF-8".into())),
            ("LanguageLocaleKey", Val::Str("en_US".into())),
            ("CreatedDate", Val::DateTime(now)),
            ("CreatedById", Val::Str(self.user_id.clone())),
            ("LastModifiedDate", Val::DateTime(now)),
            ("LastModifiedById", Val::Str(self.user_id.clone())),
            ("SystemModstamp", Val::DateTime(now)),
        ];
        for (name, v) in values {
            if let Some(c) = u.def.field(name).and_then(|f| f.column()) {
                u.table.set(c, row, &v);
            }
        }
        let def = u.def.clone();
        u.table.derive_row(&def, row);
    }

    pub fn add_object(&self, def: ObjectDef) -> ObjRef {
        let mut reg = self.registry.write();
        let slot = reg.objects.len();
        let name = def.name.to_ascii_lowercase();
        let prefix = def.key_prefix;
        let obj = Arc::new(RwLock::new(SObject::new(def, slot)));
        reg.objects.push(obj.clone());
        reg.by_name.insert(name, slot);
        reg.by_prefix.insert(prefix, slot);
        drop(reg);
        self.touch_schema();
        obj
    }

    pub fn object(&self, name: &str) -> Option<ObjRef> {
        let reg = self.registry.read();
        reg.by_name
            .get(&name.to_ascii_lowercase())
            .map(|&i| reg.objects[i].clone())
    }

    pub fn by_prefix(&self, prefix: &[u8; 3]) -> Option<ObjRef> {
        let reg = self.registry.read();
        reg.by_prefix.get(prefix).map(|&i| reg.objects[i].clone())
    }

    pub fn by_slot(&self, slot: usize) -> Option<ObjRef> {
        self.registry.read().objects.get(slot).cloned()
    }

    pub fn objects(&self) -> Vec<ObjRef> {
        self.registry.read().objects.clone()
    }

    pub fn prefix_taken(&self, prefix: &[u8; 3]) -> bool {
        self.registry.read().by_prefix.contains_key(prefix)
    }

    /// A free custom-object key prefix (`a01`, `a02`, ...).
    pub fn next_custom_prefix(&self) -> [u8; 3] {
        const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        for a in b"abcdefgh" {
            for b in DIGITS {
                for c in DIGITS {
                    let p = [*a, *b, *c];
                    if !self.prefix_taken(&p) {
                        return p;
                    }
                }
            }
        }
        *b"zzz"
    }

    pub fn touch_schema(&self) {
        let now = crate::timefmt::wall_ms() / 1000 * 1000;
        self.schema_modified.fetch_max(now, Ordering::SeqCst);
    }

    /// Bumps the schema time past any earlier value, even within the same second.
    pub fn schema_changed(&self) {
        let now = crate::timefmt::wall_ms() / 1000 * 1000;
        let prev = self.schema_modified.load(Ordering::SeqCst);
        self.schema_modified
            .store(now.max(prev + 1000), Ordering::SeqCst);
    }

    pub fn schema_modified_ms(&self) -> i64 {
        self.schema_modified.load(Ordering::SeqCst)
    }

    /// Record counts (live rows) per object.
    pub fn record_counts(&self) -> Vec<(String, usize)> {
        self.objects()
            .iter()
            .map(|o| {
                let o = o.read();
                (o.def.name.clone(), o.table.live_count())
            })
            .collect()
    }
}
