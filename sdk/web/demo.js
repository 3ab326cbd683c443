/* Kindling demo page: join a room, publish camera and microphone (optionally a
 * second resolution and a screen share), watch the others, switch their layers,
 * toggle top-N audio and look at the statistics. Plain script on top of HRTC.
 *
 * Query parameters prefill the form: ?appId=&roomId=&userId=&role=&profile=&dual=1&topN=1&autojoin=1
 * Signatures come from /demo/signature (a server started with
 * KINDLING_DEMO_SIGNATURES=1) unless entered by hand.
 */
(function () {
  'use strict';

  var $ = function (id) { return document.getElementById(id); };
  var client = null;
  var camera = null;
  var screen = null;
  var tiles = new Map(); // "userId/type" -> {stream, el, select, stats}
  var statsTimer = null;

  function log(text) {
    var line = document.createElement('div');
    line.textContent = new Date().toLocaleTimeString() + '  ' + text;
    var box = $('log');
    box.appendChild(line);
    while (box.childNodes.length > 300) box.removeChild(box.firstChild);
    box.scrollTop = box.scrollHeight;
  }

  function describe(e) {
    return e && e.getCode ? e.getCode() + ' ' + e.getMsg() + (e.detail ? ' (' + e.detail + ')' : '') : String(e);
  }

  function setJoined(joined) {
    $('join').disabled = joined;
    $('leave').disabled = !joined;
    var joiner = joined && Number($('role').value) === 0;
    $('muteMic').disabled = !joiner;
    $('muteCam').disabled = !joiner;
    $('screen').disabled = !joiner || !HRTC.isScreenShareSupported();
    ['appId', 'roomId', 'userId', 'userName', 'role', 'profile', 'dual', 'topN'].forEach(function (id) { $(id).disabled = joined; });
  }

  function prefill() {
    var q = new URLSearchParams(location.search);
    HRTC.VIDEO_PROFILES.forEach(function (p) {
      var o = document.createElement('option');
      o.value = o.textContent = p;
      $('profile').appendChild(o);
    });
    $('profile').value = q.get('profile') || '360p_1';
    $('appId').value = q.get('appId') || localStorage.getItem('kindling.appId') || '';
    $('roomId').value = q.get('roomId') || 'demo';
    $('userId').value = q.get('userId') || 'user' + Math.floor(Math.random() * 10000);
    $('userName').value = q.get('userName') || $('userId').value;
    $('role').value = q.get('role') === '2' ? '2' : '0';
    $('dual').checked = q.get('dual') === '1';
    $('topN').checked = q.get('topN') === '1';
    $('version').textContent = HRTC.VERSION;
    $('server').textContent = location.host;
    $('manualSig').onchange = function () { $('sigFields').hidden = !$('manualSig').checked; };
    return q.get('autojoin') === '1';
  }

  async function credentials(appId, roomId, userId) {
    if ($('manualSig').checked) return { ctime: $('ctime').value.trim(), signature: $('signature').value.trim() };
    var url = '/demo/signature?' + new URLSearchParams({ appId: appId, roomId: roomId, userId: userId });
    var resp = await fetch(url);
    if (resp.status === 404) {
      throw new Error('the server does not hand out demo signatures (start it with KINDLING_DEMO_SIGNATURES=1) ' +
        'or the app is unknown; enter the signature by hand');
    }
    if (!resp.ok) throw new Error('signature: HTTP ' + resp.status);
    return resp.json();
  }

  // ------------------------------------------------------------------ remote tiles

  function tileKey(stream) { return stream.getUserId() + '/' + stream.getType(); }

  function addTile(stream) {
    removeTile(stream);
    var key = tileKey(stream);
    var el = document.createElement('div');
    el.className = 'tile';
    var box = document.createElement('div');
    box.className = 'video';
    box.id = 'remote-' + key.replace('/', '-');
    var bar = document.createElement('div');
    bar.className = 'bar';
    var title = document.createElement('strong');
    title.textContent = stream.getUserId() + (stream.getType() === 'auxiliary' ? ' (screen)' : '');
    bar.appendChild(title);
    var select = document.createElement('select');
    select.title = 'layer (resolutionId)';
    fillLayers(select, stream);
    select.onchange = function () { switchLayers().catch(function (e) { log('layer switch failed: ' + describe(e)); }); };
    if (select.options.length) bar.appendChild(select);
    var mute = document.createElement('button');
    mute.textContent = 'mute';
    mute.onclick = function () {
      var muted = mute.textContent === 'mute';
      if (muted) stream.muteAudio(); else stream.unmuteAudio();
      mute.textContent = muted ? 'unmute' : 'mute';
    };
    bar.appendChild(mute);
    var stats = document.createElement('div');
    stats.className = 'stats';
    el.appendChild(box);
    el.appendChild(bar);
    el.appendChild(stats);
    $('tiles').appendChild(el);
    tiles.set(key, { stream: stream, el: el, select: select, stats: stats, box: box });
    return box.id;
  }

  /** The layer choice: one option per resolution of the stream (highest first). */
  function fillLayers(select, stream) {
    var chosen = select.value;
    select.textContent = '';
    stream.getStreamInfo().videoProfiles.forEach(function (p) {
      var o = document.createElement('option');
      o.value = p.resolutionId;
      o.textContent = p.width + 'x' + p.height + ' (' + p.resolutionId + ')';
      select.appendChild(o);
    });
    if (chosen && Array.prototype.some.call(select.options, function (o) { return o.value === chosen; })) select.value = chosen;
  }

  function removeTile(stream) {
    var key = tileKey(stream);
    var t = tiles.get(key);
    if (!t) return;
    t.stream.close();
    if (t.el.parentNode) t.el.parentNode.removeChild(t.el);
    tiles.delete(key);
  }

  async function subscribe(stream) {
    var boxId = addTile(stream);
    var t = tiles.get(tileKey(stream));
    var option;
    if (stream.hasVideo()) {
      // Camera streams: the layer picked in the tile (highest first); audio unless top-N delivers it.
      option = { video: true, audio: stream.hasAudio() && !$('topN').checked, resolutionIds: t.select.value ? [t.select.value] : undefined };
    } else {
      option = { audio: true, video: false };
    }
    await client.subscribe(stream, option);
    await stream.play(boxId, { objectFit: stream.getType() === 'auxiliary' ? 'contain' : 'cover' });
  }

  /** batchSubscribe: the complete list of camera videos with the chosen layers. */
  async function switchLayers() {
    var infos = [];
    tiles.forEach(function (t) {
      if (t.stream.getType() === 'main' && t.select.value) infos.push({ userId: t.stream.getUserId(), resolutionIds: [t.select.value] });
    });
    await client.batchSubscribe(infos);
    log('layers: ' + infos.map(function (i) { return i.userId + '=' + i.resolutionIds[0]; }).join(', '));
  }

  // ------------------------------------------------------------------ statistics

  function fmt(obj) {
    return Object.keys(obj).map(function (k) { return k + '=' + obj[k]; }).join(' ');
  }

  async function refreshStats() {
    if (!client || client.getConnectionState() !== 'CONNECTED') return;
    var lines = [];
    if (camera) {
      try {
        lines.push('transport ' + fmt(await client.getTransportStats()));
      } catch (e) { /* not published */ }
      var local = await client.getLocalVideoStats();
      local.forEach(function (v) {
        v.mainStream.forEach(function (s) {
          lines.push('send ' + s.frameWidth + 'x' + s.frameHeight + ' frames=' + s.framesEncoded + ' bytes=' + s.bytesSent);
        });
      });
    }
    $('stats').textContent = lines.join('\n');
    var video = await client.getRemoteVideoStats();
    var audio = await client.getRemoteAudioStats();
    tiles.forEach(function (t) {
      var uid = t.stream.getUserId();
      var v = video.get(uid);
      var rows = [];
      var list = v ? (t.stream.getType() === 'main' ? v.mainStream : v.subStream ? [v.subStream] : []) : [];
      list.forEach(function (s) {
        rows.push(s.frameWidth + 'x' + s.frameHeight + ' decoded=' + s.framesDecoded + ' lost=' + s.packetsLost);
      });
      var a = audio.get(uid);
      if (a && t.stream.getType() === 'main') rows.push('audio packets=' + a.packetsReceived + ' lost=' + a.packetsLost);
      t.stats.textContent = rows.join('\n');
    });
  }

  // ------------------------------------------------------------------ join / leave

  async function join() {
    var appId = $('appId').value.trim();
    var roomId = $('roomId').value.trim();
    var userId = $('userId').value.trim();
    var role = Number($('role').value);
    localStorage.setItem('kindling.appId', appId);
    $('join').disabled = true;
    try {
      await HRTC.checkSystemRequirements(false).catch(function (e) { log('browser check: ' + describe(e)); });
      var cred = await credentials(appId, roomId, userId);
      client = HRTC.createClient({ appId: appId });
      wire(client);
      if ($('topN').checked) client.enableTopThreeAudioMode(true);
      await client.join(roomId, { userId: userId, userName: $('userName').value, role: role, ctime: String(cred.ctime), signature: cred.signature });
      log('joined ' + roomId + ' as ' + userId);
      setJoined(true);
      await client.enableRtcStats(true, 2000);
      await client.enableStreamStateDetection(true, 3);
      statsTimer = setInterval(function () { refreshStats().catch(function (e) { log('stats: ' + describe(e)); }); }, 1000);
      if (role === 0) await publishCamera();
    } catch (e) {
      log('join failed: ' + describe(e));
      client = null;
      setJoined(false);
    }
  }

  async function publishCamera() {
    camera = HRTC.createStream({ audio: true, video: true, userId: $('userId').value, mirror: true });
    camera.setVideoProfile($('profile').value);
    try {
      await camera.initialize();
    } catch (e) {
      log('capture: ' + describe(e)); // partial capture still publishes what works
    }
    if ($('dual').checked) {
      var info = await camera.addResolution('180p_1');
      log('second resolution ' + info.width + 'x' + info.height + ' (' + info.resolutionId + ')');
    }
    await camera.play('localVideo', { muted: true });
    await client.publish(camera);
    log('published ' + camera.getStreamInfo().videoProfiles.map(function (p) { return p.width + 'x' + p.height; }).join(' + '));
  }

  async function leave() {
    if (!client) return;
    clearInterval(statsTimer);
    try {
      await client.leave();
    } catch (e) {
      log('leave: ' + describe(e));
    }
    cleanup();
  }

  function cleanup() {
    tiles.forEach(function (t) { removeTile(t.stream); });
    if (camera) camera.close();
    if (screen) screen.close();
    camera = screen = null;
    client = null;
    clearInterval(statsTimer);
    setJoined(false);
    $('peers').textContent = '';
  }

  function wire(c) {
    var peers = new Set();
    function showPeers() { $('peers').textContent = peers.size ? '(' + Array.from(peers).join(', ') + ')' : ''; }
    c.on('connection-state-changed', function (e) { $('state').textContent = e.curState; log('connection ' + e.prevState + ' -> ' + e.curState); });
    c.on('peer-join', function (e) { peers.add(e.userId); showPeers(); log('peer-join ' + e.userId); });
    c.on('peer-leave', function (e) { peers.delete(e.userId); showPeers(); log('peer-leave ' + e.userId + (e.reason ? ' (' + e.reason.code + ' ' + e.reason.msg + ')' : '')); });
    c.on('stream-added', function (e) {
      log('stream-added ' + tileKey(e.stream));
      subscribe(e.stream).catch(function (err) { log('subscribe ' + tileKey(e.stream) + ' failed: ' + describe(err)); });
    });
    c.on('stream-removed', function (e) { log('stream-removed ' + tileKey(e.stream)); removeTile(e.stream); });
    c.on('stream-updated', function (e) {
      log('stream-updated ' + tileKey(e.stream));
      var t = tiles.get(tileKey(e.stream));
      if (t) {
        fillLayers(t.select, e.stream);
        if (t.select.options.length && !t.select.parentNode) t.el.querySelector('.bar').insertBefore(t.select, t.el.querySelector('.bar button'));
      }
    });
    c.on('stream-subscribed', function (e) { log('stream-subscribed ' + tileKey(e.stream)); });
    c.on('client-banned', function (e) { log('client-banned: ' + e.reason); cleanup(); });
    c.on('Error', function (e) { log('Error ' + e.errorCode + ' ' + e.errorMsg); });
    c.on('signature-expired', function (e) { log('signature-expired ' + e.errorCode); });
    c.on('network-quality', function (e) { $('quality').textContent = 'up ' + e.uplinkNetworkQuality + ' / down ' + e.downlinkNetworkQuality; });
    c.on('volume-indicator', function (list) { log('loudest: ' + list.map(function (v) { return v.user_id + ':' + v.volume; }).join(' ')); });
    c.on('stream-interrupted', function (list) { log('interrupted ' + list.map(function (u) { return u.userId; }).join(',')); });
    c.on('stream-recovered', function (list) { log('recovered ' + list.map(function (u) { return u.userId; }).join(',')); });
    c.on('remote-user-name-changed', function (e) { log(e.userId + ' is now "' + e.userName + '"'); });
    ['mute-audio', 'unmute-audio', 'mute-video', 'unmute-video'].forEach(function (name) {
      c.on(name, function (e) { log(name + ' ' + e.userId); });
    });
    ['camera-changed', 'recording-device-changed', 'playback-device-changed'].forEach(function (name) {
      c.on(name, function (e) { log(name + ' ' + e.state + ' ' + e.deviceId); });
    });
  }

  // ------------------------------------------------------------------ buttons

  $('join').onclick = join;
  $('leave').onclick = leave;
  $('muteMic').onclick = function () {
    if (!camera) return;
    var mute = $('muteMic').textContent === 'Mute mic';
    if (mute ? camera.muteAudio() : camera.unmuteAudio()) $('muteMic').textContent = mute ? 'Unmute mic' : 'Mute mic';
  };
  $('muteCam').onclick = function () {
    if (!camera) return;
    var mute = $('muteCam').textContent === 'Mute camera';
    if (mute ? camera.muteVideo() : camera.unmuteVideo()) $('muteCam').textContent = mute ? 'Unmute camera' : 'Mute camera';
  };
  $('screen').onclick = async function () {
    if (screen) {
      var s = screen;
      screen = null;
      $('screen').textContent = 'Share screen';
      try { await client.unpublish(s); } catch (e) { log('unpublish screen: ' + describe(e)); }
      s.close();
      return;
    }
    screen = HRTC.createStream({ screen: true });
    try {
      await screen.initialize();
      screen.on('screen-sharing-stopped', function () { if (screen) $('screen').onclick(); });
      await client.publish(screen);
      $('screen').textContent = 'Stop sharing';
      log('sharing the screen');
    } catch (e) {
      log('screen share: ' + describe(e));
      screen.close();
      screen = null;
    }
  };

  window.kindlingDemo = { get client() { return client; }, get camera() { return camera; }, tiles: tiles };
  if (prefill()) join();
}());
