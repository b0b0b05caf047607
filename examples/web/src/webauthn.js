'use strict';
// Security keys and passkeys (WebAuthn) for the demo pages: registration on the
// account page, the second factor on the verification page. A static file (the CSP
// allows no inline script); binary fields travel as base64url, as the server's
// options and the contract in the README use them.
(function () {
  function toBytes(b64url) {
    var b64 = b64url.replace(/-/g, '+').replace(/_/g, '/');
    while (b64.length % 4) { b64 += '='; }
    var raw = atob(b64);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out.buffer;
  }
  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = '';
    for (var i = 0; i < bytes.length; i++) { raw += String.fromCharCode(bytes[i]); }
    return btoa(raw).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }
  function post(path, body) {
    return fetch(path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body === undefined ? {} : body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (json) {
        if (!r.ok) { var e = new Error(json.message || ('HTTP ' + r.status)); e.code = json.error; throw e; }
        return json;
      });
    });
  }
  function showError(el, e) {
    if (!el) { return; }
    el.textContent = e && e.message ? e.message : 'The security key did not answer.';
    el.className = 'error';
    el.hidden = false;
  }
  function creationOptions(options) {
    var pk = options.publicKey;
    pk.challenge = toBytes(pk.challenge);
    pk.user.id = toBytes(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    return { publicKey: pk };
  }
  function requestOptions(options) {
    var pk = options.publicKey;
    pk.challenge = toBytes(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    return { publicKey: pk };
  }
  function registration(cred) {
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: toB64url(cred.response.attestationObject),
        clientDataJSON: toB64url(cred.response.clientDataJSON),
        transports: cred.response.getTransports ? cred.response.getTransports() : null
      },
      extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
    };
  }
  function assertion(cred) {
    var r = cred.response;
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: toB64url(r.authenticatorData),
        clientDataJSON: toB64url(r.clientDataJSON),
        signature: toB64url(r.signature),
        userHandle: r.userHandle ? toB64url(r.userHandle) : null
      },
      extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
    };
  }
  function showCodes(section, codes) {
    var heading = document.createElement('h2');
    heading.textContent = 'Your backup codes';
    var note = document.createElement('p');
    note.textContent = 'Two-factor authentication is on. Keep these codes somewhere safe: they are shown once.';
    var list = document.createElement('ul');
    list.id = 'backup-codes';
    codes.forEach(function (c) {
      var li = document.createElement('li');
      li.textContent = c;
      list.appendChild(li);
    });
    var next = document.createElement('a');
    next.href = '/account?notice=key_added';
    next.id = 'webauthn-continue';
    next.textContent = 'Continue to your account';
    section.replaceChildren(heading, note, list, next);
  }

  document.addEventListener('DOMContentLoaded', function () {
    if (!window.PublicKeyCredential || !navigator.credentials) { return; }
    var add = document.getElementById('webauthn-register');
    if (add) {
      add.hidden = false;
      add.addEventListener('click', function () {
        var section = document.getElementById('webauthn');
        var error = document.getElementById('webauthn-error');
        var name = (document.getElementById('webauthn-name') || {}).value || 'security key';
        post('/api/2fa/webauthn/register/start', { name: name })
          .then(function (options) { return navigator.credentials.create(creationOptions(options)); })
          .then(function (cred) { return post('/api/2fa/webauthn/register/finish', registration(cred)); })
          .then(function (done) {
            if (done.backup_codes && done.backup_codes.length) { showCodes(section, done.backup_codes); }
            else { window.location.assign('/account?notice=key_added'); }
          })
          .catch(function (e) {
            if (e.code === 'reauthentication_required') {
              window.location.assign('/reauth?next=%2Faccount');
              return;
            }
            showError(error, e);
          });
      });
    }
    var confirm = document.getElementById('webauthn-reauth');
    if (confirm) {
      confirm.hidden = false;
      confirm.addEventListener('click', function () {
        var error = document.getElementById('webauthn-error');
        var password = (document.getElementById('password') || {}).value || '';
        var next = (document.querySelector('input[name=next]') || {}).value || '/account';
        if (!password) { showError(error, new Error('Enter your password first.')); return; }
        post('/api/reauth/webauthn/start')
          .then(function (options) { return navigator.credentials.get(requestOptions(options)); })
          .then(function (cred) {
            return post('/api/reauth', { password: password, webauthn: assertion(cred) });
          })
          .then(function () { window.location.assign(next.charAt(0) === '/' && next.charAt(1) !== '/' ? next : '/account'); })
          .catch(function (e) { showError(error, e); });
      });
    }
    var use = document.getElementById('webauthn-login');
    if (use) {
      use.hidden = false;
      use.addEventListener('click', function () {
        var error = document.getElementById('webauthn-error');
        var remember = document.querySelector('input[name=remember_device]');
        post('/api/login/webauthn/start')
          .then(function (options) { return navigator.credentials.get(requestOptions(options)); })
          .then(function (cred) {
            return post('/api/login/second-factor', {
              webauthn: assertion(cred),
              remember_device: !!(remember && remember.checked)
            });
          })
          .then(function () { window.location.assign('/account'); })
          .catch(function (e) { showError(error, e); });
      });
    }
  });
})();
