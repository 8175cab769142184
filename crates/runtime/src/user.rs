//! The user a container runs as: the image's `USER`, resolved against the rootfs's `/etc/passwd`
//! and `/etc/group`, then overridden by the security contexts.
//!
//! Like containerd's CRI plugin: `runAsUser`/`runAsGroup` of the container win over the pod's,
//! which win over the image. When `runAsUser` is given without a group, the group is that user's
//! primary group from `/etc/passwd`, else 0. Supplementary groups are the user's memberships in
//! `/etc/group`, then `supplementalGroups` and `fsGroup` of the pod.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{PodSecurityContext, SecurityContext};

/// The resolved identity of the container's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessUser {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// Supplementary group ids, without duplicates.
    pub additional_gids: Vec<u32>,
    /// The user's home directory from `/etc/passwd`, if it has an entry.
    pub home: Option<String>,
}

/// One line of `/etc/passwd`.
#[derive(Debug, Clone)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

/// One line of `/etc/group`.
#[derive(Debug, Clone)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// The user and group databases of a rootfs (empty when the files are absent).
#[derive(Debug, Default)]
pub struct UserDb {
    passwd: Vec<PasswdEntry>,
    groups: Vec<GroupEntry>,
}

impl UserDb {
    /// Reads `/etc/passwd` and `/etc/group` below `rootfs`; a missing or symlinked file is empty.
    pub fn read(rootfs: &Path) -> UserDb {
        UserDb::parse(
            &read_in_rootfs(rootfs, "etc/passwd"),
            &read_in_rootfs(rootfs, "etc/group"),
        )
    }

    /// Parses the contents of `/etc/passwd` and `/etc/group`.
    pub fn parse(passwd: &str, group: &str) -> UserDb {
        let passwd = passwd
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                Some(PasswdEntry {
                    name: f.first()?.to_string(),
                    uid: f.get(2)?.parse().ok()?,
                    gid: f.get(3)?.parse().ok()?,
                    home: f.get(5).unwrap_or(&"/").to_string(),
                })
            })
            .collect();
        let groups = group
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                Some(GroupEntry {
                    name: f.first()?.to_string(),
                    gid: f.get(2)?.parse().ok()?,
                    members: f
                        .get(3)
                        .map(|m| {
                            m.split(',')
                                .filter(|s| !s.is_empty())
                                .map(String::from)
                                .collect()
                        })
                        .unwrap_or_default(),
                })
            })
            .collect();
        UserDb { passwd, groups }
    }

    fn user_by_name(&self, name: &str) -> Option<&PasswdEntry> {
        self.passwd.iter().find(|e| e.name == name)
    }

    fn user_by_uid(&self, uid: u32) -> Option<&PasswdEntry> {
        self.passwd.iter().find(|e| e.uid == uid)
    }

    fn group_by_name(&self, name: &str) -> Option<&GroupEntry> {
        self.groups.iter().find(|g| g.name == name)
    }
}

/// Reads a file of the rootfs, refusing symlinks so that nothing outside the rootfs is read.
fn read_in_rootfs(rootfs: &Path, relative: &str) -> String {
    let path: PathBuf = rootfs.join(relative);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_file() => std::fs::read_to_string(&path).unwrap_or_default(),
        _ => String::new(),
    }
}

/// Resolves the process user from the image's `USER` string and the security contexts.
///
/// Fails with a message when a user or group *name* is not in the rootfs's databases.
pub fn resolve(
    image_user: &str,
    db: &UserDb,
    container: Option<&SecurityContext>,
    pod: Option<&PodSecurityContext>,
) -> Result<ProcessUser, String> {
    // The image's USER: "", "uid", "uid:gid", "name", "name:group".
    let (user_part, group_part) = match image_user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (image_user, None),
    };
    let (mut uid, mut gid) = match user_part {
        "" => (0, 0),
        u => match u.parse::<u32>() {
            Ok(uid) => (uid, db.user_by_uid(uid).map_or(0, |e| e.gid)),
            Err(_) => {
                let entry = db
                    .user_by_name(u)
                    .ok_or_else(|| format!("no user \"{u}\" in /etc/passwd"))?;
                (entry.uid, entry.gid)
            }
        },
    };
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                db.group_by_name(g)
                    .ok_or_else(|| format!("no group \"{g}\" in /etc/group"))?
                    .gid
            }
        };
    }

    // The security contexts, container over pod.
    let run_as_user = container
        .and_then(|c| c.run_as_user)
        .or(pod.and_then(|p| p.run_as_user));
    let run_as_group = container
        .and_then(|c| c.run_as_group)
        .or(pod.and_then(|p| p.run_as_group));
    if let Some(u) = run_as_user {
        uid = to_id(u)?;
        gid = db.user_by_uid(uid).map_or(0, |e| e.gid);
    }
    if let Some(g) = run_as_group {
        gid = to_id(g)?;
    }

    // Supplementary groups: memberships by name, then the pod's groups.
    let entry = db.user_by_uid(uid);
    let mut additional_gids: Vec<u32> = Vec::new();
    if let Some(entry) = entry {
        for group in db.groups.iter().filter(|g| g.members.contains(&entry.name)) {
            additional_gids.push(group.gid);
        }
    }
    if let Some(pod) = pod {
        for g in pod
            .supplemental_groups
            .iter()
            .flatten()
            .chain(pod.fs_group.iter())
        {
            additional_gids.push(to_id(*g)?);
        }
    }
    let mut unique = Vec::new();
    for g in additional_gids {
        if g != gid && !unique.contains(&g) {
            unique.push(g);
        }
    }

    Ok(ProcessUser {
        uid,
        gid,
        additional_gids: unique,
        home: entry.map(|e| e.home.clone()),
    })
}

fn to_id(value: i64) -> Result<u32, String> {
    u32::try_from(value).map_err(|_| format!("invalid user or group id {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> UserDb {
        UserDb::parse(
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
            "root:x:0:\nuser:x:1000:\nextra:x:2000:user\nother:x:3000:root,user\n",
        )
    }

    #[test]
    fn empty_user_is_root() {
        let u = resolve("", &db(), None, None).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_deref()), (0, 0, Some("/root")));
        assert_eq!(u.additional_gids, vec![3000]);
    }

    #[test]
    fn numeric_user_and_group() {
        let u = resolve("1000:1000", &db(), None, None).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert_eq!(u.additional_gids, vec![2000, 3000]);
        let u = resolve("4242", &db(), None, None).unwrap();
        assert_eq!((u.uid, u.gid, u.home), (4242, 0, None));
    }

    #[test]
    fn names_resolve_against_the_rootfs_databases() {
        let u = resolve("user:extra", &db(), None, None).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 2000));
        assert!(resolve("nobody", &db(), None, None)
            .unwrap_err()
            .contains("nobody"));
        assert!(resolve("user:nogroup", &db(), None, None)
            .unwrap_err()
            .contains("nogroup"));
    }

    #[test]
    fn security_contexts_override_the_image_container_first() {
        let pod = PodSecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(5),
            supplemental_groups: Some(vec![7, 7]),
            fs_group: Some(8),
            ..Default::default()
        };
        let u = resolve("", &db(), None, Some(&pod)).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 5));
        assert_eq!(u.additional_gids, vec![2000, 3000, 7, 8]);

        let ctr = SecurityContext {
            run_as_user: Some(0),
            ..Default::default()
        };
        let u = resolve("1000:1000", &db(), Some(&ctr), Some(&pod)).unwrap();
        assert_eq!((u.uid, u.gid), (0, 5));

        let only_user = SecurityContext {
            run_as_user: Some(1000),
            ..Default::default()
        };
        let u = resolve("", &db(), Some(&only_user), None).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
    }
}
