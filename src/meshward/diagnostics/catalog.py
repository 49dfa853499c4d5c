"""The catalog of diagnostic codes: each code is defined once here and never reused.

Ranges (one owner each, so parallel work never collides):
  MW01xx  config/  — YAML syntax, documents, kinds, fields, values
  MW02xx  model/   — references between resources, conflicts, effective policy
  MW03xx  xds/     — translation: a resource that drops itself
  MW04xx  runtime  — control plane and data plane at run time (NACKs, CA, apply)
  MW05xx  analyze/ — best-practice findings (meshward analyze)
  MW06xx  admission/ — admission policy violations (refused or audited changes)
A retired code stays in the table with `retired=True`; its number is never given out again.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshward.diagnostics.diagnostic import Level


@dataclass(frozen=True, slots=True)
class Code:
    """A catalogued diagnostic code with its default level and a one-line summary.

    `fix` is the one-line remedy shown by `meshward analyze` (table "fix:", SARIF help);
    "" when the summary already says what to do.
    """

    code: str
    level: Level
    summary: str
    retired: bool = False
    fix: str = ""


def _table(*codes: Code) -> dict[str, Code]:
    table: dict[str, Code] = {}
    for entry in codes:
        if entry.code in table:
            raise ValueError(f"diagnostic code {entry.code} defined twice")
        table[entry.code] = entry
    return table


E, W, I = Level.ERROR, Level.WARNING, Level.INFO  # noqa: E741 - table shorthand

CATALOG: dict[str, Code] = _table(
    # --- MW01xx config ---------------------------------------------------------------------
    Code("MW0101", E, "file is not valid YAML"),
    Code("MW0102", E, "document is not a mapping"),
    Code("MW0103", E, "apiVersion or kind missing"),
    Code("MW0104", E, "unknown apiVersion/kind"),
    Code("MW0105", W, "Istio kind recognised but not yet supported; ignored with this warning"),
    Code("MW0106", E, "unknown field"),
    Code("MW0107", E, "required field missing"),
    Code("MW0108", E, "field has the wrong type"),
    Code("MW0109", E, "value not allowed for this field"),
    Code("MW0110", E, "metadata.name missing or not a DNS-1123 name"),
    Code("MW0111", E, "invalid namespace name"),
    Code("MW0112", E, "duplicate resource (same kind, namespace and name)"),
    Code("MW0113", E, "port number out of range 1-65535"),
    Code("MW0114", E, "invalid duration"),
    Code("MW0115", E, "path does not exist or holds no YAML files"),
    Code("MW0116", E, "duplicate port in one list"),
    Code("MW0117", E, "invalid label key or value"),
    Code("MW0118", E, "more than one MeshConfig"),
    Code("MW0119", E, "invalid trust domain"),
    Code("MW0120", E, "invalid service account name"),
    Code("MW0121", E, "portLevelMtls requires a workload selector"),
    Code("MW0122", E, "PeerAuthentication with a selector in the root namespace", retired=True),
    Code("MW0123", E, "certificate TTL out of range"),
    Code("MW0124", E, "duplicate key in one YAML mapping"),
    Code(
        "MW0125",
        E,
        "TLS mode or setting not supported here (a DestinationRule's certificate settings need "
        "mode SIMPLE or MUTUAL); refused, not ignored",
        fix="drop the setting (DestinationRule: or set tls.mode SIMPLE or MUTUAL)",
    ),
    Code("MW0126", W, "setting accepted but not yet enforced"),
    Code("MW0127", E, "Istio security kind not yet supported; refused (fail closed)", retired=True),
    # MW0128-MW0129, MW0198-MW0199 DestinationRule TLS origination (config/destination_rule.py)
    Code(
        "MW0128",
        E,
        "TLS origination (SIMPLE/MUTUAL) without server verification",
        fix="set tls.caCertificates or tls.credentialName (with a CA), "
        "or insecureSkipVerify: true to accept an unverified server",
    ),
    Code(
        "MW0129",
        W,
        "TLS origination with insecureSkipVerify: the server is not verified",
        fix="set tls.caCertificates or tls.credentialName and drop insecureSkipVerify",
    ),
    # MW0175-MW0189 Gateway, VirtualService, gateway Workload (config/gateway.py, ...)
    Code(
        "MW0175",
        E,
        "Gateway server host is not [namespace/]dnsName",
        fix="write hosts as ns/host, */host or ./host",
    ),
    Code(
        "MW0176",
        E,
        "Gateway TLS mode and certificate settings do not fit",
        fix="SIMPLE/MUTUAL: credentialName or certificate files; MUTUAL: a CA; "
        "PASSTHROUGH/ISTIO_MUTUAL: none",
    ),
    Code(
        "MW0177",
        E,
        "minProtocolVersion above maxProtocolVersion",
        fix="raise maxProtocolVersion or lower minProtocolVersion",
    ),
    Code(
        "MW0178",
        W,
        "Gateway accepts TLS below 1.2",
        fix="set minProtocolVersion: TLSV1_2 (the default) or TLSV1_3",
    ),
    Code(
        "MW0179",
        E,
        "cipher suite unknown or unsafe (want ECDHE with AEAD)",
        fix="use ECDHE-*-AES*-GCM-* or ECDHE-*-CHACHA20-POLY1305",
    ),
    Code(
        "MW0180",
        E,
        "Gateway server protocol and TLS settings do not fit",
        fix="HTTPS/TLS need tls.mode; PASSTHROUGH needs protocol TLS; HTTP: only httpsRedirect",
    ),
    Code("MW0181", E, "VirtualService host is not *, *.suffix or a DNS name"),
    Code("MW0182", E, "VirtualService gateway is not name, namespace/name or mesh"),
    Code(
        "MW0183",
        E,
        "route destination or weights invalid",
        fix="give each destination a host; several destinations need weights summing to 100",
    ),
    Code("MW0184", E, "regex does not compile under RE2 (no look-around or back-references)"),
    Code("MW0185", E, "tls route match needs sniHosts with DNS names"),
    Code(
        "MW0186",
        E,
        "VirtualService feature not supported; refused rather than routed differently",
        fix="remove the field; subsets, fault, mirror, CORS and delegation are not implemented",
    ),
    Code(
        "MW0187",
        E,
        "a gateway Workload has no command, ports or sidecar: false",
        fix="remove command/ports; the gateway pod is its Envoy",
    ),
    Code("MW0188", E, "numTrustedProxies outside 0-32"),
    # MW013x-MW015x AuthorizationPolicy (config/authorization_policy.py)
    Code("MW0130", E, "AuthorizationPolicy `when` key is not a documented condition key"),
    Code("MW0131", E, "malformed principal (want <td>/ns/<ns>/sa/<sa>, *, or a * prefix/suffix)"),
    Code("MW0132", E, "malformed requestPrincipal (want <iss>/<sub>, *, or a * prefix/suffix)"),
    Code("MW0133", E, "invalid IP address or CIDR block"),
    Code("MW0134", E, "invalid port in an AuthorizationPolicy (not a number in 1-65535)"),
    Code("MW0135", E, "invalid path or path template"),
    Code("MW0136", E, "serviceAccounts entry is not <namespace>/<name>"),
    Code("MW0137", E, "empty from/to list, or a from.source or to.operation with no fields"),
    Code("MW0138", E, "`when` condition with neither values nor notValues"),
    Code("MW0139", E, "CUSTOM needs provider.name, and only CUSTOM may have a provider"),
    Code("MW0140", E, "istio.io/dry-run annotation is not a boolean"),
    Code("MW0141", E, "dry-run is supported for ALLOW and DENY policies only"),
    Code("MW0142", E, "targetRef/targetRefs not supported; policy refused (fail closed)"),
    Code("MW0143", E, "field or condition not supported with this action"),
    Code("MW0144", E, "DENY or CUSTOM policy without rules is never triggered (Istio rejects it)"),
    Code("MW0145", E, "empty string in a list of values"),
    Code("MW0146", E, "serviceAccounts cannot be combined with principals or namespaces"),
    Code("MW0147", E, "wildcard `*` allowed only as a whole value, a prefix or a suffix"),
    Code("MW0148", W, "HTTP method is not upper case; methods match case-sensitively"),
    Code("MW0149", E, "`when` key needs a name in brackets, e.g. request.headers[x-user]"),
    # MW0189 Workload hostnames (config/workload.py)
    Code(
        "MW0189",
        E,
        "Workload hostnames: only an outside: true workload has them, and each is a DNS name",
        fix="give hostnames (e.g. api.maps.example) to the outside workload that serves them",
    ),
    # MW0190-MW0199 MeshConfig extensionProviders (config/extension_provider.py)
    Code(
        "MW0190",
        E,
        "extension provider kind not supported (need exactly one of envoyExtAuthzGrpc/Http)",
        fix="give the provider exactly one of envoyExtAuthzGrpc or envoyExtAuthzHttp",
    ),
    Code(
        "MW0191",
        E,
        "extension provider name defined twice",
        fix="give every entry of extensionProviders its own name",
    ),
    Code(
        "MW0192",
        E,
        "extension provider service is not a mesh service host",
        fix="write the service as name.namespace.svc.cluster.local or name.namespace",
    ),
    Code(
        "MW0193",
        E,
        "extension provider timeout is zero or negative",
        fix="set timeout to a positive duration such as 1s",
    ),
    Code(
        "MW0194",
        E,
        "statusOnError is not an HTTP status 200-599",
        fix='write statusOnError as a status code string, e.g. "403" or "503"',
    ),
    Code(
        "MW0195",
        E,
        "header pattern or body size of an extension provider is invalid",
        fix="use header names, `prefix*` or `*suffix`, and a positive maxRequestBytes",
    ),
    Code(
        "MW0196",
        E,
        "envoyExtAuthzHttp pathPrefix does not start with /",
        fix="start pathPrefix with /, e.g. /check",
    ),
    Code(
        "MW0197",
        E,
        "extauthz rule file is invalid (one document, rules with allow, statuses 200-599)",
        fix="see `meshward extauthz --help` for the rule file format",
    ),
    Code(
        "MW0198",
        E,
        "DestinationRule MUTUAL client key pair missing, incomplete or given twice",
        fix="give credentialName, or clientCertificate and privateKey (only for MUTUAL)",
    ),
    Code(
        "MW0199",
        E,
        "DestinationRule TLS file path is not absolute (the sidecar's Envoy reads it)",
        fix="write an absolute path, or use credentialName (the secret store)",
    ),
    # MW016x-MW0174 RequestAuthentication (config/request_authentication.py)
    Code("MW0160", E, "jwksUri is not an http or https URL"),
    Code("MW0161", E, "inline jwks is not a JSON Web Key Set with at least one key"),
    Code("MW0162", E, "invalid HTTP header, query parameter or cookie name in a jwtRule"),
    Code("MW0163", E, "RequestAuthentication targetRef/targetRefs not supported; refused"),
    Code("MW0164", E, "jwtRule timeout is not a positive duration"),
    Code("MW0165", E, "MeshConfig jwksFetchBlockedCidrs entry is not a CIDR block"),
    Code("MW0166", E, "MeshConfig jwksRefreshInterval out of range (10s..24h)"),
    # MW015x MeshConfig network settings (config/mesh_config.py)
    Code(
        "MW0150",
        E,
        "MeshConfig outboundTrafficPolicy.mode is not ALLOW_ANY or REGISTRY_ONLY",
        fix="set outboundTrafficPolicy: {mode: REGISTRY_ONLY} (or ALLOW_ANY, the default)",
    ),
    Code(
        "MW0151",
        E,
        "Workload with outside: true cannot have a sidecar",
        fix="drop sidecar: true (an outside host is not in the mesh), or drop outside: true",
    ),
    # MW0152-MW0159 ServiceEntry (config/service_entry.py)
    Code(
        "MW0152",
        E,
        "ServiceEntry host is not a DNS name or *.wildcard (`*` alone is not allowed)",
        fix="write hosts as api.example.com or *.example.com",
    ),
    Code(
        "MW0153",
        E,
        "ServiceEntry address is not an IP or CIDR (CIDRs only with resolution NONE or STATIC)",
        fix="write addresses as 240.0.0.1 or 10.1.0.0/16; with resolution DNS give single IPs",
    ),
    Code(
        "MW0154",
        E,
        "ServiceEntry endpoints do not fit its resolution",
        fix="NONE: no endpoints; STATIC: endpoints with IP addresses; DNS: endpoints or "
        "non-wildcard hosts",
    ),
    Code(
        "MW0155",
        E,
        "ServiceEntry endpoint port names no port of the entry",
        fix="use the name of one of spec.ports in endpoints[].ports",
    ),
    Code(
        "MW0156",
        E,
        "ServiceEntry workloadSelector is not supported; refused",
        fix="list the workloads' addresses under endpoints instead",
    ),
    Code(
        "MW0157",
        E,
        "ServiceEntry port protocol is not one Istio knows",
        fix="use HTTP, HTTPS, HTTP2, GRPC, TCP or TLS",
    ),
    Code(
        "MW0158",
        E,
        "ServiceEntry exportTo entry is not '.', '*' or a namespace name",
        fix="use exportTo: ['.'] (this namespace) or ['*'] (every namespace)",
    ),
    # MW0159, MW0167-MW0169 Sidecar (config/sidecar.py)
    Code(
        "MW0159",
        E,
        "Sidecar egress host is not namespace/dnsName",
        fix="write hosts as ./*, */api.example.com, istio-system/* or ~/*",
    ),
    Code(
        "MW0167",
        E,
        "Sidecar ingress listeners are not supported; refused",
        fix="remove spec.ingress (inbound ports come from the Workload)",
    ),
    Code(
        "MW0168",
        E,
        "Sidecar egress port, bind, captureMode or egressProxy is not supported; refused",
        fix="list hosts only; every egress host applies on every port",
    ),
    # --- MW02xx model ----------------------------------------------------------------------
    Code("MW0201", W, "Service selects no workload"),
    Code("MW0202", W, "workload selected by a Service has no port equal to the Service targetPort"),
    Code("MW0203", W, "DestinationRule host matches no service"),
    Code("MW0204", W, "DestinationRule workloadSelector matches no workload in its namespace"),
    Code("MW0205", W, "PeerAuthentication selector matches no workload with a sidecar"),
    Code("MW0206", W, "portLevelMtls port is not a port of any selected workload; ignored"),
    Code("MW0207", W, "several PeerAuthentications at one level apply; the oldest wins"),
    Code("MW0208", W, "several DestinationRules for one host and callers; the oldest wins"),
    Code("MW0209", W, "PeerAuthentication with a selector in the root namespace is ignored"),
    Code("MW0210", W, "sidecar workload port is reserved by the sidecar; no inbound listener"),
    Code("MW0211", I, "pod has no address yet; left out of the model until it is placed"),
    # MW022x-MW023x AuthorizationPolicy (model/authz.py)
    Code("MW0220", W, "AuthorizationPolicy selector matches no workload with a sidecar"),
    Code("MW0221", W, "ALLOW rule uses HTTP-only fields; dropped on a TCP port (allows less)"),
    Code("MW0222", W, "DENY/AUDIT/CUSTOM rule uses HTTP-only fields; widened on a TCP port"),
    Code("MW0223", W, "CUSTOM policy fails closed: external authorization is not available"),
    Code(
        "MW0224",
        W,
        "rule uses JWT attributes; no RequestAuthentication selects the workload, so none has them",
    ),
    # MW0241-MW0249 Sidecar and ServiceEntry (model/sidecar_scope.py)
    Code(
        "MW0241",
        W,
        "Sidecar workloadSelector matches no workload with a sidecar in its namespace",
        fix="fix the selector's labels, or drop it to make the namespace default",
    ),
    Code(
        "MW0242",
        W,
        "several Sidecars without workloadSelector in one namespace; the oldest applies",
        fix="keep one namespace default Sidecar; give the others a workloadSelector",
    ),
    # MW025x RequestAuthentication (model/request_authn.py)
    Code("MW0250", W, "RequestAuthentication selector matches no workload with a sidecar"),
    Code("MW0251", W, "RequestAuthentication without jwtRules has no effect"),
    # --- MW026x ingress gateway (model/gateway.py)
    Code(
        "MW0260",
        W,
        "Gateway selector matches no gateway workload",
        fix="label a Workload that has `gateway: ingress` (or `egress`) with the selector's labels",
    ),
    Code(
        "MW0261",
        W,
        "VirtualService names a Gateway that does not exist; that binding is ignored",
        fix="create the Gateway or fix `gateways` (name, namespace/name or mesh)",
    ),
    Code(
        "MW0262",
        W,
        "route destination is not a port of a mesh service or a ServiceEntry host; dropped",
        fix="use a Service host (name, name.ns or FQDN) or a ServiceEntry host the routing "
        "proxy sees (exportTo), and one of its ports",
    ),
    Code(
        "MW0263",
        W,
        "two Gateway servers claim one port and host with different settings; later dropped",
        fix="give each server its own hosts, or merge them",
    ),
    Code(
        "MW0264",
        W,
        "Gateway port is reserved by the proxy; server dropped",
        fix="pick a port outside 15000-15090",
    ),
    Code(
        "MW0265",
        W,
        "VirtualService host matches no host of its Gateway's servers; not served there",
        fix="add the host to the Gateway server's hosts",
    ),
    Code(
        "MW0266",
        W,
        "route kind does not fit the server (http on PASSTHROUGH/TLS, tls on HTTPS); dropped",
        fix="use tls routes with sniHosts for PASSTHROUGH, http routes for HTTP/HTTPS",
    ),
    Code(
        "MW0267",
        W,
        "`mesh` VirtualService part not applied at sidecars: a host that is no HTTP service of "
        "the mesh, or tls/tcp routes",
        fix="name a mesh Service (name, name.namespace or FQDN) with an HTTP port in hosts; "
        "route TCP by Service name",
    ),
    Code(
        "MW0268",
        W,
        "another `mesh` VirtualService already routes this host at sidecars; this one is left "
        "out there (Istio merges VirtualServices only at gateways)",
        fix="put all routes for one host into one VirtualService",
    ),
    Code(
        "MW0269",
        W,
        "claim match at sidecars, but no RequestAuthentication selects the destination's "
        "workloads: the claim cannot be verified and the match is never taken",
        fix="add a RequestAuthentication selecting the destination service's workloads",
    ),
    # MW0270-MW0279 external authorization (model/extauthz.py, model/authz.py)
    Code(
        "MW0270",
        W,
        "CUSTOM policy names a provider MeshConfig does not define; its rules deny",
        fix="add the provider to MeshConfig extensionProviders or fix provider.name",
    ),
    Code(
        "MW0271",
        W,
        "extension provider service or port is not in the mesh; CUSTOM using it denies",
        fix="point service and port at a mesh Service port of the authorization server",
    ),
    Code(
        "MW0272",
        W,
        "extension provider port protocol does not fit its kind; CUSTOM using it denies",
        fix="name the Service port grpc (envoyExtAuthzGrpc) or http (envoyExtAuthzHttp)",
    ),
    Code(
        "MW0273",
        W,
        "one workload's CUSTOM policies name several providers; all of them deny",
        fix="use one provider per workload (Istio's rule), e.g. by narrowing the selectors",
    ),
    Code(
        "MW0274",
        W,
        "a Service port targets a gateway pod port where no Gateway server listens",
        fix="make the Service's targetPort a Gateway server port of the gateway it selects",
    ),
    # --- MW03xx xds ------------------------------------------------------------------------
    Code("MW0301", W, "HTTP Host already routed to another service of this proxy; dropped"),
    Code("MW0302", E, "two listeners of one proxy bind one address and port; later dropped"),
    Code("MW0303", E, "a service port appears twice in one proxy's outbound list; later dropped"),
    Code(
        "MW0320",
        E,
        "two gateway filter chains on one port match the same SNI; later dropped",
        fix="give each Gateway server distinct hosts on a shared port",
    ),
    # --- MW04xx runtime --------------------------------------------------------------------
    Code("MW0401", E, "Envoy rejected configuration (NACK); last good configuration kept"),
    Code("MW0402", E, "change refused: the config set has errors; running configuration kept"),
    # MW045x secret store (state/secrets.py, meshward secret)
    Code(
        "MW0450",
        E,
        "secret file is not a PEM certificate, key or CRL",
        fix="pass PEM files (-----BEGIN CERTIFICATE----- / PRIVATE KEY / X509 CRL)",
    ),
    Code(
        "MW0451",
        E,
        "private key does not match the certificate",
        fix="pass the key the certificate was issued for",
    ),
    Code("MW0452", E, "certificate expired or not yet valid", fix="renew the certificate"),
    Code(
        "MW0453",
        E,
        "secret not found in the store",
        fix="create it: meshward secret create tls NAME --cert F --key F",
    ),
    Code("MW0454", E, "secret name is not a DNS-1123 subdomain"),
    Code(
        "MW0455",
        W,
        "Gateway credentialName not in the secret store; its handshakes fail until created",
        fix="meshward secret create tls NAME --cert F --key F [--cacert F]",
    ),
    # MW047x DestinationRule TLS origination at runtime (runner; model/origination.py)
    Code(
        "MW0470",
        E,
        "DestinationRule credentialName not in the secret store, or without the CA or key "
        "pair its mode needs; refused (fail closed, the last good config stays)",
        fix="meshward secret create tls NAME --cert F --key F --cacert F, then apply again",
    ),
    # MW044x JWKS for RequestAuthentication (jwks/key_sets.py; control-plane.json `jwks`)
    Code(
        "MW0440",
        E,
        "JWKS fetch failed; the last good key set stays in force",
        fix="make the jwksUri / issuer discovery reachable (status shows the error)",
    ),
    Code(
        "MW0441",
        E,
        "no JWKS fetched yet: tokens of the rule are refused (401) until a fetch succeeds",
        fix="check the jwksUri or issuer, and jwksFetchBlockedCidrs (status shows the error)",
    ),
    # MW042x ca/ — the CA's own certificates (CertificateAuthority.health)
    Code("MW0420", W, "CA signing or root certificate expires soon; rotate it"),
    Code("MW0421", E, "CA signing or root certificate has expired"),
    # MW043x netns network mode (runner/network.py, netns/)
    Code(
        "MW0430",
        E,
        "netns network mode cannot run here (needs Linux, root, ip, iptables-restore, setpriv)",
        fix="run as root on Linux after scripts/setup.sh, or use --network loopback",
    ),
    Code(
        "MW0431",
        W,
        "network leftovers of an earlier run of this mesh were found and removed",
        fix="none needed; `meshward down` after a crash removes them too",
    ),
    Code(
        "MW0432",
        E,
        "netns address pool already in use on this host (another mesh on the same subnet)",
        fix="pick another --address-pool (198.18.N.0/24 or 127.N.0.0/16) or --state-dir",
    ),
    # --- MW05xx analyze --------------------------------------------------------------------
    # MW050x mTLS in force (analyze/mtls.py)
    Code(
        "MW0501",
        W,
        "sidecar port accepts plaintext: PERMISSIVE mTLS in force",
        fix="set PeerAuthentication mtls.mode STRICT once no plaintext caller is left",
    ),
    Code(
        "MW0502",
        W,
        "sidecar port has mTLS DISABLEd: plaintext only, no peer identity",
        fix="set PeerAuthentication mtls.mode STRICT (or PERMISSIVE while callers migrate)",
    ),
    # MW051x authorization coverage and references (analyze/authz_coverage.py, authz_references.py)
    Code(
        "MW0510",
        W,
        "sidecar workload not covered by any ALLOW AuthorizationPolicy (KIA1301)",
        fix="add an ALLOW AuthorizationPolicy selecting the workload that names its callers",
    ),
    Code(
        "MW0511",
        W,
        "namespace has sidecar workloads but no default-deny policy (KIA1301)",
        fix="add `kind: AuthorizationPolicy` with `spec: {}` (allow-nothing) in the namespace",
    ),
    Code(
        "MW0512",
        W,
        "AuthorizationPolicy names a namespace with no sidecar workload (KIA0101)",
        fix="correct the namespace, or remove it from the rule",
    ),
    Code(
        "MW0513",
        W,
        "AuthorizationPolicy names a principal or service account no workload has (KIA0106)",
        fix="correct the principal (<trust-domain>/ns/<ns>/sa/<sa>) or service account",
    ),
    Code(
        "MW0514",
        W,
        "rule matches on peer identity on a port that accepts plaintext (KIA0105)",
        fix="make the port STRICT: plaintext callers have no principal or namespace",
    ),
    # MW052x DestinationRule TLS against the callee (analyze/destination_rules.py)
    Code(
        "MW0520",
        E,
        "DestinationRule sends plaintext to a STRICT port: traffic fails (KIA0207, KIA0501)",
        fix="remove trafficPolicy.tls (auto mTLS) or set mode ISTIO_MUTUAL",
    ),
    Code(
        "MW0521",
        E,
        "DestinationRule sends mTLS to a port that cannot accept it: traffic fails"
        " (KIA0208, KIA0505)",
        fix="remove trafficPolicy.tls (auto mTLS), or give the callee a sidecar / mTLS",
    ),
    Code(
        "MW0525",
        E,
        "DestinationRule originates TLS (SIMPLE/MUTUAL) to a STRICT sidecar: traffic fails",
        fix="use ISTIO_MUTUAL or no trafficPolicy.tls for mesh workloads; SIMPLE/MUTUAL are for "
        "servers that terminate TLS themselves",
    ),
    Code(
        "MW0526",
        E,
        "a sidecar route sends an external host to an egress gateway port whose servers cannot"
        " take it (plaintext to ISTIO_MUTUAL, an SNI no server matches, mTLS to PASSTHROUGH or"
        " plaintext servers): traffic fails",
        fix="for an ISTIO_MUTUAL server write a DestinationRule for the gateway Service with"
        " portLevelSettings tls {mode: ISTIO_MUTUAL, sni: <a host of the server>}; for"
        " PASSTHROUGH or plaintext servers send no mesh mTLS (no ISTIO_MUTUAL for that port)",
    ),
    Code(
        "MW0527",
        W,
        "sidecars originate mTLS with the client credential of an egress gateway's way out:"
        " a caller the gateway refuses can use the host's port directly with it",
        fix="give the DestinationRule a workloadSelector for the gateway's labels (in the"
        " gateway's namespace), so only the gateway originates with the credential",
    ),
    Code(
        "MW0528",
        W,
        "sidecars reach a port of a host directly while its other ports leave through an"
        " egress gateway: the gateway's policy does not apply on that port",
        fix="put that port in a ServiceEntry of its own exported only to the gateway's"
        " namespace (exportTo), or route it through the gateway too",
    ),
    # MW053x mesh-wide posture (analyze/network.py, certificates.py)
    Code(
        "MW0530",
        I,
        "outbound traffic is unrestricted (outboundTrafficPolicy ALLOW_ANY)",
        fix="set MeshConfig outboundTrafficPolicy.mode REGISTRY_ONLY and run with --network "
        "netns (where it is enforced)",
    ),
    Code(
        "MW0531",
        W,
        "loopback network mode: an app can bypass its sidecar (no capture)",
        fix="run with --network netns (Linux, root) for enforced capture",
    ),
    Code(
        "MW0532",
        W,
        "workload certificate TTL above the allowed maximum",
        fix="lower MeshConfig spec.workloadCertTTL (default 24h)",
    ),
    Code(
        "MW0533",
        E,
        "CA files are unusable (incomplete, mismatched or expired)",
        fix="install a valid plug-in CA (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem)",
    ),
    # MW0550-MW0554 end-user authentication (analyze/request_authn.py)
    Code(
        "MW0550",
        W,
        "RequestAuthentication validates tokens nobody requires: tokenless requests pass",
        fix="add an AuthorizationPolicy requiring requestPrincipals (ALLOW) or denying "
        'notRequestPrincipals: ["*"] (DENY) for the workload',
    ),
    Code(
        "MW0558",
        W,
        "external authorization provider has failOpen: CUSTOM checks stop when it is down",
        fix="remove failOpen (Istio's default false) so an unreachable provider denies",
    ),
    # --- MW06xx admission ------------------------------------------------------------------
    # Level is per AdmissionPolicy: error when enforcement is deny, warning when audit.
    Code("MW0601", E, "RequireStrictMtls: PERMISSIVE or DISABLE mTLS (or plaintext client TLS)"),
    Code("MW0602", E, "AuthorizedCommands: Workload command not in the authorized list"),
    Code("MW0603", E, "AuthorizedExceptions: exception annotation not approved by an approver"),
    Code("MW0604", E, "RefuseAllowAll: ALLOW AuthorizationPolicy with a rule matching everything"),
    Code("MW0605", E, "RequireDryRunFirst: enforced ALLOW/DENY policy never ran in dry-run"),
)


def lookup(code: str) -> Code:
    """The catalog entry for `code`; KeyError for an uncatalogued code (a bug)."""
    return CATALOG[code]
