# Varnish in front of an app wrapped in consentgate: one stored copy of a free page per
# consent class. This is the VCL the test suite runs (tests/test_varnish.py); see
# docs/caching.md for how the classes work and for the CDN recipes.
#
# What the origin promises (and this file relies on):
#   * the class cookie `cg_class` names the reader's class: `g` (only necessary granted)
#     or `g.` + the granted optional categories, sorted, joined by `.`; no cookie = `u`
#     (undecided). It is unsigned on purpose: forging it only picks another public copy.
#   * a response that is the same for the whole class carries `ConsentGate-Class: <class>`,
#     the app's own Cache-Control, no Set-Cookie, and
#     `Vary: Cookie, Sec-Fetch-Dest, Accept-Language, Sec-GPC`.
#   * everything else (walled or metered articles, signed-in readers, /consentgate/ pages,
#     responses with a Set-Cookie, or all of it under `[cache] shared = false`) is
#     `Cache-Control: private` without ConsentGate-Class: this VCL never stores it.
#   * responses the gate does not rewrite (images, CSS, JSON) carry no ConsentGate-Class
#     either, so this VCL does not store them; cache static assets by path in a rule of
#     your own placed before this logic if you want them cached.
#   * `[cookie_names] consent_class` renames cg_class: change the name here too.
#
# If the gate is configured with a region header, add it to vcl_hash below as well
# (the origin names it in Vary too, which Varnish also honours).
vcl 4.1;

backend default {
    .host = "127.0.0.1";
    .port = "8000";
}

sub vcl_recv {
    # Our own header, set below from the cookie: never trust one sent by the client.
    unset req.http.ConsentGate-Cache-Class;

    # Only reads can be shared. POSTs (the consent form, sign-in) always reach the app.
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    # consentgate's own pages (banner endpoints, settings, accounts) are per reader.
    # If you changed the gate's `prefix`, change it here too.
    if (req.url ~ "^/consentgate(/|\?|$)") {
        return (pass);
    }
    # A signed-in reader's page is theirs alone, and so is anything behind HTTP auth.
    if (req.http.Authorization || req.http.Cookie ~ "(^|;)\s*cg_session=") {
        return (pass);
    }

    # The class the request's cookie names. No cg_class cookie: undecided.
    if (req.http.Cookie ~ "(^|;)\s*cg_class=") {
        if (req.http.Cookie ~ "(^|;)\s*cg_class=.*;\s*cg_class=") {
            # Two class cookies: which one the origin reads is not ours to guess.
            return (pass);
        }
        set req.http.ConsentGate-Cache-Class = regsub(
            req.http.Cookie, "^(?:.*;)?\s*cg_class=([^;]*).*$", "\1");
        if (req.http.ConsentGate-Cache-Class !~ "^g(\.[a-z][a-z0-9_-]{0,31}){0,32}$") {
            # Not a class the origin ever sets (or more than 32 optional categories):
            # no copy to share, ask the app.
            return (pass);
        }
    } else {
        set req.http.ConsentGate-Cache-Class = "u";
    }

    # The builtin vcl_recv passes every request carrying a Cookie header; nearly every
    # reader has one (cg_consent, cg_class, the site's own), so look the page up by
    # class instead. The cookies still go to the origin on a miss: it needs them to
    # render the class's copy and to check that the class is real.
    return (hash);
}

sub vcl_hash {
    # The copy is keyed on what the origin's page depends on for a reader with no
    # session: the URL, the site, the class, and the headers it names in Vary
    # (Cookie stands in for the class, which is all of Cookie that matters here).
    # Each part is labelled so that two different requests never hash alike.
    hash_data("url:" + req.url);
    if (req.http.host) {
        hash_data("host:" + req.http.host);
    } else {
        hash_data("ip:" + server.ip);
    }
    hash_data("class:" + req.http.ConsentGate-Cache-Class);
    hash_data("lang:" + req.http.Accept-Language);
    hash_data("gpc:" + req.http.Sec-GPC);
    hash_data("dest:" + req.http.Sec-Fetch-Dest);
    return (lookup);
}

sub vcl_backend_response {
    if (bereq.uncacheable) {
        # A pass: nothing is stored whatever the response says.
        return (deliver);
    }
    if (!beresp.http.ConsentGate-Class
        || beresp.http.ConsentGate-Class != bereq.http.ConsentGate-Cache-Class) {
        # Not marked shareable by the origin, or marked for another class than the
        # one the cookie names (a forged cg_class with a real consent cookie of another
        # class; the origin refuses those too, this is defence in depth): never store
        # it under this class's key. Hit-for-miss: later requests for the key go to the
        # origin, and the next shareable answer replaces this marker.
        set beresp.ttl = 120s;
        set beresp.uncacheable = true;
        return (deliver);
    }
    # Shareable: the origin's Vary names Cookie for caches that know nothing of
    # classes. This cache keys on the class instead, so Cookie leaves Vary for storage
    # (else every reader's cookie jar would be its own variant). The client's copy
    # gets the origin's Vary back in vcl_deliver.
    if (beresp.http.Vary) {
        set beresp.http.ConsentGate-Origin-Vary = beresp.http.Vary;
        set beresp.http.Vary = regsuball(beresp.http.Vary, "(?i)(^|,)\s*cookie\s*(?=,|$)", "");
        set beresp.http.Vary = regsub(beresp.http.Vary, "^\s*,\s*", "");
        if (beresp.http.Vary == "") {
            unset beresp.http.Vary;
        }
    }
    # No return: the builtin vcl_backend_response then applies the app's own
    # Cache-Control (private, no-store, no-cache or max-age=0 are not stored) and
    # refuses anything with a Set-Cookie.
}

sub vcl_deliver {
    if (resp.http.ConsentGate-Origin-Vary) {
        # What a browser or a downstream cache sees stays correct: Vary: Cookie.
        set resp.http.Vary = resp.http.ConsentGate-Origin-Vary;
        unset resp.http.ConsentGate-Origin-Vary;
    }
    # For operators (and the tests): was this copy stored?
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
