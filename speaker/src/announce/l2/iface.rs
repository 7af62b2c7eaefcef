//! Which interfaces may answer: read from `/sys/class/net` and `/proc/net/if_inet6` (both follow the
//! network namespace of the process, `ip netns exec` remounts `/sys`), so no ioctl is needed.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::Ipv6Addr;
use std::path::Path;

use regex::Regex;

use super::Mac;

const IFF_UP: u32 = 0x1;
const IFF_BROADCAST: u32 = 0x2;
const IFF_LOOPBACK: u32 = 0x8;
const IFF_NOARP: u32 = 0x80;
const ARPHRD_ETHER: u32 = 1;
/// `/proc/net/if_inet6` scope of link-local addresses.
const SCOPE_LINK: u32 = 0x20;
const IFA_F_DADFAILED: u32 = 0x08;
const IFA_F_TENTATIVE: u32 = 0x40;

/// An interface that may answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IfInfo {
    pub index: u32,
    pub mac: Mac,
    /// Source of our Neighbor Advertisements (RFC 4861 wants an address of the interface).
    pub link_local: Option<Ipv6Addr>,
}

/// One look at the interfaces: the eligible ones, and why each other one is not.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub eligible: BTreeMap<String, IfInfo>,
    pub ineligible: BTreeMap<String, String>,
}

impl Scan {
    /// Why `name` cannot answer (for error messages).
    pub(crate) fn why_not(&self, name: &str) -> String {
        self.ineligible
            .get(name)
            .cloned()
            .unwrap_or_else(|| "no such interface".into())
    }
}

/// Scans this namespace's interfaces.
pub(crate) fn scan(exclude: &[Regex]) -> io::Result<Scan> {
    scan_at(
        Path::new("/sys/class/net"),
        Path::new("/proc/net/if_inet6"),
        exclude,
    )
}

fn scan_at(sys: &Path, if_inet6: &Path, exclude: &[Regex]) -> io::Result<Scan> {
    // Absent when IPv6 is disabled: then no interface has a link-local address.
    let lls = fs::read_to_string(if_inet6)
        .map(|s| parse_if_inet6(&s))
        .unwrap_or_default();
    let mut out = Scan::default();
    for entry in fs::read_dir(sys)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        match probe(&sys.join(&name), &name, exclude) {
            Ok(index_mac) => {
                let (index, mac) = index_mac;
                let link_local = lls.get(&name).copied();
                out.eligible.insert(
                    name,
                    IfInfo {
                        index,
                        mac,
                        link_local,
                    },
                );
            }
            Err(why) => {
                out.ineligible.insert(name, why);
            }
        }
    }
    Ok(out)
}

fn probe(dir: &Path, name: &str, exclude: &[Regex]) -> Result<(u32, Mac), String> {
    if let Some(re) = exclude.iter().find(|re| re.is_match(name)) {
        return Err(format!("excluded by {}", re.as_str()));
    }
    let read = |f: &str| {
        fs::read_to_string(dir.join(f))
            .map(|s| s.trim().to_owned())
            .map_err(|e| format!("reading {f}: {e}"))
    };
    let flags = parse_hex(&read("flags")?).ok_or("unreadable flags")?;
    let hw_type: u32 = read("type")?.parse().map_err(|_| "unreadable type")?;
    let enslaved = dir.join("master").exists();
    eligible(flags, hw_type, enslaved).map_err(str::to_owned)?;
    let index: u32 = read("ifindex")?.parse().map_err(|_| "unreadable ifindex")?;
    let mac = Mac::parse(&read("address")?).ok_or("unreadable address")?;
    if mac == Mac([0; 6]) {
        return Err("no MAC address".into());
    }
    Ok((index, mac))
}

/// MetalLB's rules (plus: Ethernet only, as the frames are Ethernet).
pub(crate) fn eligible(flags: u32, hw_type: u32, enslaved: bool) -> Result<(), &'static str> {
    if flags & IFF_UP == 0 {
        return Err("down");
    }
    if flags & IFF_LOOPBACK != 0 {
        return Err("loopback");
    }
    if flags & IFF_BROADCAST == 0 {
        return Err("not broadcast-capable");
    }
    if flags & IFF_NOARP != 0 {
        return Err("ARP off (IFF_NOARP)");
    }
    if hw_type != ARPHRD_ETHER {
        return Err("not Ethernet");
    }
    if enslaved {
        return Err("enslaved to a bridge or bond");
    }
    Ok(())
}

fn parse_hex(s: &str) -> Option<u32> {
    u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

/// The link-local address per interface from `/proc/net/if_inet6` (one usable address each: not
/// tentative or failed when there is such a one).
pub(crate) fn parse_if_inet6(text: &str) -> BTreeMap<String, Ipv6Addr> {
    let mut best: BTreeMap<String, (bool, Ipv6Addr)> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [addr, _index, _plen, scope, flags, name] = f.as_slice() else {
            continue;
        };
        let (Some(scope), Some(flags)) = (parse_hex(scope), parse_hex(flags)) else {
            continue;
        };
        if scope != SCOPE_LINK || addr.len() != 32 {
            continue;
        }
        let Ok(bits) = u128::from_str_radix(addr, 16) else {
            continue;
        };
        let usable = flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) == 0;
        let ip = Ipv6Addr::from(bits);
        match best.get(*name) {
            Some((true, _)) => {}
            Some((false, _)) if !usable => {}
            _ => {
                best.insert((*name).to_owned(), (usable, ip));
            }
        }
    }
    best.into_iter().map(|(k, (_, ip))| (k, ip)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eligibility_rules() {
        assert_eq!(eligible(0x1003, 1, false), Ok(()));
        assert_eq!(eligible(0x1002, 1, false), Err("down"));
        assert_eq!(eligible(0x9, 772, false), Err("loopback"));
        assert_eq!(eligible(0x1091, 1, false), Err("not broadcast-capable"));
        assert_eq!(eligible(0x1083, 1, false), Err("ARP off (IFF_NOARP)"));
        assert_eq!(
            eligible(0x1003, 1, true),
            Err("enslaved to a bridge or bond")
        );
        assert_eq!(eligible(0x1003, 776, false), Err("not Ethernet"));
        assert_eq!(parse_hex("0x1003\n"), Some(0x1003));
        assert_eq!(parse_hex("zz"), None);
    }

    #[test]
    fn link_locals_from_if_inet6() {
        let text = "\
20010db8010000000000000000000011 03 40 00 80     eth0
fe80000000000000000000fffe00000a 03 40 20 c0     eth0
fe80000000000000000000fffe00000b 03 40 20 80     eth0
fe80000000000000000000fffe00000c 04 40 20 40     eth1
00000000000000000000000000000001 01 80 10 80       lo
garbage line
fe80zz00000000000000000000000000 05 40 20 80     eth2
";
        let m = parse_if_inet6(text);
        // eth0: the tentative one (0xc0 has 0x40) loses to the permanent one.
        assert_eq!(m["eth0"], "fe80::ff:fe00:b".parse::<Ipv6Addr>().unwrap());
        // eth1: only a tentative one: better than nothing.
        assert_eq!(m["eth1"], "fe80::ff:fe00:c".parse::<Ipv6Addr>().unwrap());
        assert!(!m.contains_key("lo"));
        assert!(!m.contains_key("eth2"));
    }

    #[test]
    fn scans_a_fake_sysfs() {
        let root = std::env::temp_dir().join(format!("flb-l2-scan-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let mk = |name: &str, flags: &str, ty: &str, idx: &str, mac: &str, master: bool| {
            let d = root.join("net").join(name);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("flags"), flags).unwrap();
            fs::write(d.join("type"), ty).unwrap();
            fs::write(d.join("ifindex"), idx).unwrap();
            fs::write(d.join("address"), mac).unwrap();
            if master {
                fs::create_dir_all(d.join("master")).unwrap();
            }
        };
        mk(
            "eth0",
            "0x1003\n",
            "1\n",
            "2\n",
            "02:00:00:00:00:0a\n",
            false,
        );
        mk(
            "docker0",
            "0x1003\n",
            "1\n",
            "3\n",
            "02:00:00:00:00:0b\n",
            false,
        );
        mk(
            "port1",
            "0x1003\n",
            "1\n",
            "4\n",
            "02:00:00:00:00:0c\n",
            true,
        );
        mk("lo", "0x9\n", "772\n", "1\n", "00:00:00:00:00:00\n", false);
        mk("eth9", "0x1003\n", "1\n", "9\n", "not-a-mac\n", false);
        let ex = vec![Regex::new("^docker.*").unwrap()];
        let s = scan_at(&root.join("net"), &root.join("nope"), &ex).unwrap();
        assert_eq!(s.eligible.keys().collect::<Vec<_>>(), vec!["eth0"]);
        assert_eq!(s.eligible["eth0"].index, 2);
        assert_eq!(s.eligible["eth0"].mac, Mac([2, 0, 0, 0, 0, 0x0a]));
        assert_eq!(s.eligible["eth0"].link_local, None);
        assert_eq!(s.why_not("docker0"), "excluded by ^docker.*");
        assert_eq!(s.why_not("port1"), "enslaved to a bridge or bond");
        assert_eq!(s.why_not("lo"), "loopback");
        assert_eq!(s.why_not("eth9"), "unreadable address");
        assert_eq!(s.why_not("eth7"), "no such interface");
        fs::remove_dir_all(&root).unwrap();
    }
}
