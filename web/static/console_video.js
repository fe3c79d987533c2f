/* The governor's console as a video endpoint: WebRTC through Asterisk (JsSIP over a secure
   websocket; DTLS-SRTP media). Credentials come from the server for this page only and are
   never shown. While the video is on, the console's actions are sent without leaving the page
   (a page load would end the call). No inline script (CSP). */
(function () {
  "use strict";
  var panel = document.getElementById("video");
  if (!panel) { return; }
  var labels = JSON.parse(document.getElementById("video-labels").textContent);
  var status = document.getElementById("video-status");
  var message = document.getElementById("console-message");
  var frames = panel.querySelector(".video-frames");
  var remoteVideo = document.getElementById("remote-video");
  var localVideo = document.getElementById("local-video");
  var buttons = {};
  ["start", "stop", "answer", "hangup"].forEach(function (name) {
    buttons[name] = document.getElementById("video-" + name);
  });
  var ua = null;
  var current = null;
  var ACTIVE = { registering: true, ready: true, incoming: true, in_call: true };

  function show(state, text) {
    panel.dataset.state = state;
    status.textContent = text;
    buttons.start.hidden = Boolean(ACTIVE[state]);
    buttons.stop.hidden = !ACTIVE[state];
    buttons.answer.hidden = state !== "incoming";
    buttons.hangup.hidden = state !== "incoming" && state !== "in_call";
    frames.hidden = state !== "in_call";
    window.tawasulVideoActive = Boolean(ACTIVE[state]);
  }

  function formData(extra) {
    var data = new FormData();
    data.append("csrf_token", panel.dataset.csrf);
    Object.keys(extra || {}).forEach(function (key) { data.append(key, extra[key]); });
    return data;
  }

  function post(url, data) {
    return fetch(url, { method: "POST", body: data, credentials: "same-origin",
                        headers: { "Accept": "application/json" } })
      .then(function (response) { return response.json(); });
  }

  function clearMedia() {
    remoteVideo.srcObject = null;
    localVideo.srcObject = null;
  }

  function attachMedia(session) {
    var pc = session.connection;
    var remote = new MediaStream(), local = new MediaStream();
    pc.getReceivers().forEach(function (r) { if (r.track) { remote.addTrack(r.track); } });
    pc.getSenders().forEach(function (s) { if (s.track && s.track.kind === "video") { local.addTrack(s.track); } });
    remoteVideo.srcObject = remote;
    localVideo.srcObject = local;
  }

  // "Connect next": this page answers first and the centre joins later, having missed the
  // picture's first keyframe (and its phone asks for none). When the centre's media starts
  // arriving, re-scale the picture for a moment: the encoder starts over with a keyframe.
  function freshKeyframe(pc) {
    var sender = pc.getSenders().filter(function (s) { return s.track && s.track.kind === "video"; })[0];
    if (!sender) { return; }
    function scale(by) {
      var params = sender.getParameters();
      if (!params.encodings || !params.encodings.length) { return Promise.resolve(); }
      params.encodings[0].scaleResolutionDownBy = by;
      return sender.setParameters(params);
    }
    scale(1.25).then(function () {
      window.setTimeout(function () { scale(1).catch(function () {}); }, 400);
    }).catch(function () {});
  }

  function keyframeWhenTheCentreJoins(pc) {
    pc.getReceivers().forEach(function (r) {
      if (r.track && r.track.kind === "video") {
        r.track.addEventListener("unmute", function () { freshKeyframe(pc); });
      }
    });
  }

  function caller(session) {
    var from = session.remote_identity;
    return (from && (from.display_name || from.uri.user)) || "";
  }

  function onSession(event) {
    var session = event.session;
    if (event.originator !== "remote") { return; }
    if (current) { session.terminate({ status_code: 486 }); return; }
    current = session;
    show("incoming", labels.incoming.replace("{name}", caller(session)));
    session.on("confirmed", function () {
      attachMedia(session);
      keyframeWhenTheCentreJoins(session.connection);
      show("in_call", labels.in_call.replace("{name}", caller(session)));
    });
    function ended() {
      if (current !== session) { return; }
      current = null;
      clearMedia();
      if (ua && ua.isRegistered()) { show("ready", labels.ready); }
    }
    session.on("ended", ended);
    session.on("failed", ended);
  }

  function start() {
    show("registering", labels.registering);
    post(panel.dataset.on, formData()).then(function (given) {
      if (!given.ok) { show("failed", given.message || labels.failed); return; }
      ua = new window.JsSIP.UA({
        sockets: [new window.JsSIP.WebSocketInterface(given.ws)],
        uri: given.uri, authorization_user: given.username, password: given.password,
        realm: given.realm, register: true, session_timers: false, user_agent: "Tawasul console"
      });
      ua.on("registered", function () { if (!current) { show("ready", labels.ready); } });
      ua.on("registrationFailed", function (e) { show("failed", labels.failed + " (" + e.cause + ")"); });
      ua.on("disconnected", function () {
        if (panel.dataset.state !== "off") { show("registering", labels.reconnecting); }
      });
      ua.on("newRTCSession", onSession);
      ua.start();
    }).catch(function () { show("failed", labels.failed); });
  }

  function stop() {
    if (current) { current.terminate(); }
    if (ua) { ua.stop(); ua = null; }
    post(panel.dataset.off, formData()).catch(function () { /* the server revokes at logout too */ });
    clearMedia();
    show("off", labels.off);
  }

  buttons.start.addEventListener("click", start);
  buttons.stop.addEventListener("click", stop);
  buttons.answer.addEventListener("click", function () {
    if (!current) { return; }
    // No STUN or TURN server: Asterisk and the browser meet on host candidates only.
    current.answer({ mediaConstraints: { audio: true, video: true }, pcConfig: { iceServers: [] } });
  });
  buttons.hangup.addEventListener("click", function () { if (current) { current.terminate(); } });
  window.addEventListener("pagehide", function () {
    if (ua) { ua.stop(); navigator.sendBeacon(panel.dataset.off, formData()); }
  });

  // While the video is on, the console's buttons act without leaving the page.
  document.querySelectorAll("form.console-action").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.tawasulVideoActive) { return; }
      event.preventDefault();
      var data = new FormData(form);
      if (form.dataset.ring) { data.append("ring", form.dataset.ring); }
      post(form.action, data).then(function (reply) {
        message.textContent = reply.message || "";
        message.dataset.ok = reply.ok ? "yes" : "no";
      }).catch(function () { message.textContent = labels.failed; message.dataset.ok = "no"; });
    });
  });

  window.tawasulVideo = { connection: function () { return current && current.connection; } };
  show("off", labels.off);
})();
