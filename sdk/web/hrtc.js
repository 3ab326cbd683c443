/*!
 * hrtc.js: the Kindling Web SDK.
 *
 * Mirrors the Huawei SparkRTC Web SDK 2.x API (`HRTC`, `Client`, `Stream`,
 * `LocalStream`, `RemoteStream`, `RtcError`; see docs/client-sdk.md of the
 * shared spec) and speaks Kindling's signalling protocol (docs/signalling.md):
 * JSON over one WebSocket at /signalling, one publisher RTCPeerConnection per
 * published stream type, and one subscriber RTCPeerConnection offered by the
 * server with fixed slots that remote sources are mapped onto.
 *
 * No build step: load it with <script src="https://server/sdk/hrtc.js"> (global
 * `HRTC`; the server defaults to the origin the script came from), require() it,
 * or import it as an ES module from /sdk/hrtc.mjs (`import HRTC from ...`).
 */
(function (root, factory) {
  'use strict';
  var scriptUrl = null;
  try {
    /* global __hrtcModuleUrl, define */
    if (typeof __hrtcModuleUrl === 'string') {
      scriptUrl = __hrtcModuleUrl; // set by the /sdk/hrtc.mjs wrapper (import.meta.url)
    } else if (typeof document !== 'undefined' && document.currentScript && document.currentScript.src) {
      scriptUrl = document.currentScript.src;
    }
  } catch (e) { /* no DOM */ }
  var HRTC = factory(scriptUrl);
  if (typeof module === 'object' && module && typeof module.exports === 'object') {
    module.exports = HRTC;
  }
  if (typeof define === 'function' && define.amd) {
    define([], function () { return HRTC; });
  }
  if (root) {
    root.HRTC = HRTC;
  }
}(typeof globalThis !== 'undefined' ? globalThis : typeof self !== 'undefined' ? self : this, function (scriptUrl) {
  'use strict';

  var VERSION = '2.0.9.301';
  var KINDLING_VERSION = '0.1.0';

  // ------------------------------------------------------------------ logging

  var LOG_LEVELS = { none: 0, error: 1, warn: 2, info: 3, debug: 4 };
  var logLevel = LOG_LEVELS.info;

  function log(level) {
    if (LOG_LEVELS[level] > logLevel || typeof console === 'undefined') return;
    var args = Array.prototype.slice.call(arguments, 1);
    args.unshift('[HRTC ' + new Date().toISOString().slice(11, 23) + ']');
    var fn = console[level] || console.log;
    try { fn.apply(console, args); } catch (e) { /* console unavailable */ }
  }

  // ------------------------------------------------------------------ errors (client-sdk.md §9)

  var RtcErrorCode = {
    RTC_ERR_CODE_SUCCESS: 0,
    RTC_ERR_CODE_RTC_SDK_ERROR: 90000001,
    RTC_ERR_CODE_WAIT_RSP_TIMEOUT: 90000004,
    RTC_ERR_CODE_INVALID_PARAMETER: 90000005,
    RTC_ERR_CODE_INVALID_OPERATION: 90100001,
    RTC_ERR_CODE_NOT_SUPPORT_ENUMERATE_DEVICES: 90100002,
    RTC_ERR_CODE_NO_AVAILABLE_DEVICES: 90100003,
    RTC_ERR_CODE_NO_AVAILABLE_VIDEO_INPUT_DEVICES: 90100004,
    RTC_ERR_CODE_NO_AVAILABLE_AUDIO_INPUT_DEVICES: 90100005,
    RTC_ERR_CODE_NO_AVAILABLE_AUDIO_OUTPUT_DEVICES: 90100006,
    RTC_ERR_CODE_STATUS_ERROR: 90100007,
    RTC_ERR_CODE_WEBSOCKET_NOT_CONNECTED: 90100008,
    RTC_ERR_CODE_WAIT_CONFIG_FAIL: 90100009,
    RTC_ERR_CODE_PUBLISH_RESPONSE_FAIL: 90100010,
    RTC_ERR_CODE_REGION_NOT_COVERED: 90100011,
    RTC_ERR_CODE_WEBSOCKET_CONNECT_TIMEOUT: 90100012,
    RTC_ERR_CODE_WEBSOCKET_RECONNECT_TIMEOUT: 90100013,
    RTC_ERR_CODE_WEBSOCKET_NOT_OPEN: 90100014,
    RTC_ERR_CODE_WEBSOCKET_INTERRUPTED: 90100015,
    RTC_ERR_CODE_WEBSOCKET_CONNECT_ERROR: 90100016,
    RTC_ERR_CODE_CAPTURE_PERMISSION_DENIED: 90100017,
    RTC_ERR_CODE_CAPTURE_OVER_CONSTRAINED: 90100018,
    RTC_ERR_CODE_CAPTURE_DEVICE_NOT_FOUND: 90100019,
    RTC_ERR_CODE_CAPTURE_DEVICE_NOT_READABLE: 90100020,
    RTC_ERR_CODE_PLAY_NOT_ALLOWED: 90100021,
    RTC_ERR_CODE_ROLE_NO_PERMISSION: 90100022,
    RTC_ERR_CODE_ANSWER_SDP_INVALID: 90100023,
    RTC_ERR_CODE_MEDIA_UPSTREAM_UNSUPPORTED: 90100024,
    RTC_ERR_CODE_INTERNAL_EXCEPTION: 90100104,
    RTC_ERR_CODE_SEND_TO_RTCCTRL_FAIL: 90100105,
    RTC_ERR_CODE_RTCCTRL_EXCEPTION: 90100106,
    RTC_ERR_CODE_WS_NOT_SUPPORTED: 90100107,
    RTC_ERR_CODE_REQUEST_FREQUENTLY: 90100108,
    RTC_ERR_CODE_INVALID_REQUEST_BODY: 90100109,
    RTC_ERR_CODE_INVALID_RESPONSE: 90100110,
    RTC_ERR_CODE_INTERNAL_ERROR: 90100199,
    RTC_ERR_CODE_INVALID_CTRL_PARAMETER: 90100201,
    RTC_ERR_CODE_INVALID_REQUEST: 90100202,
    RTC_ERR_CODE_JOIN_ROOM_FAIL: 90100203,
    RTC_ERR_CODE_ALREADY_JOINED: 90100204,
    RTC_ERR_CODE_NO_SFU_RESOURCE: 90100205,
    RTC_ERR_CODE_INVALID_SSRC: 90100206,
    RTC_ERR_CODE_STREAM_ALREADY_PUSHED: 90100207,
    RTC_ERR_CODE_SAVE_USER_ERROR: 90100208,
    RTC_ERR_CODE_UPDATE_USER_ERROR: 90100209,
    RTC_ERR_CODE_FETCH_USER_ERROR: 90100210,
    RTC_ERR_CODE_SAVE_ROOM_ERROR: 90100211,
    RTC_ERR_CODE_UPDATE_ROOM_ERROR: 90100212,
    RTC_ERR_CODE_INVALID_SUBSCRIBED_INFO: 90100213,
    RTC_ERR_CODE_INVALID_PUSHED: 90100214,
    RTC_ERR_CODE_SFU_FAIL: 90100215,
    RTC_ERR_CODE_REQUEST_SFU_FAIL: 90100216,
    RTC_ERR_CODE_OVERLOAD_ROOM_CAPACITY: 90100217,
    RTC_ERR_CODE_INVALID_ENCODING: 90100218,
    RTC_ERR_CODE_APPLY_SSRC_FAIL: 90100220,
    RTC_ERR_CODE_CTRL_TO_ACS_FAIL: 90100221,
    RTC_ERR_CODE_KICK_USER_FAIL: 90100222,
    RTC_ERR_CODE_APPLY_TO_PUSH_STREAM_FAIL: 90100223,
    RTC_ERR_CODE_ROOM_IDLE: 90100224,
    RTC_ERR_CODE_KICKED_USER: 90100225,
    RTC_ERR_CODE_SUBSCRIBED_USER_CONNECT_ERROR: 90100226,
    RTC_ERR_CODE_ROOM_NOT_EXIST: 90100227,
    RTC_ERR_CODE_MCU_FAIL: 90100228,
    RTC_ERR_CODE_ROLE_CHANGED_FAIL: 90100229,
    RTC_ERR_CODE_NO_MCU_RESOURCE: 90100230,
    RTC_ERR_CODE_CREATE_PUSH_TASK_FAIL: 90100231,
    RTC_ERR_CODE_MIX_TASK_EXISTS: 90100232,
    RTC_ERR_CODE_MIX_TASK_NOT_EXISTS: 90100233,
    RTC_ERR_CODE_MIX_USER_EMPTY: 90100234,
    RTC_ERR_CODE_STOP_AUDIO_FAIL: 90100235,
    RTC_ERR_CODE_STOP_VIDEO_FAIL: 90100236,
    RTC_ERR_CODE_ROOM_TYPE_NOT_MATCH: 90100237,
    RTC_ERR_CODE_AUDIO_LEVEL_NOT_MATCH: 90100238,
    RTC_ERR_CODE_NOT_SUPPORT_MIX: 90100239,
    RTC_ERR_CODE_VERSION_NOT_COMPATIBLE: 90100240,
    RTC_ERR_CODE_NOT_SUPPORT_SWITCH_ROLE: 90100241,
    RTC_ERR_CODE_SEND_TO_MCU_FAIL: 90100242,
    RTC_ERR_CODE_REDIRECT_MODE_NOT_MATCH: 90100243,
    RTC_ERR_CODE_ANCHOR_NUMBER_OUT_OF_RANGE: 90100246,
    RTC_ERR_CODE_TOPN_SUB_MODE_FAULT: 90100247,
    RTC_ERR_CODE_NO_EFFECT_RESPONSE: 90100248,
    RTC_ERR_CODE_SFU_CTRL_EXCEPTION: 90100249,
    RTC_ERR_CODE_DESKTOP_NUMBER_OUT_OF_RANGE: 90100250,
    RTC_ERR_CODE_CLOUD_INTERNAL_ERROR: 90100299
  };

  var ERROR_MESSAGES = {
    0: 'success',
    90000001: 'sdk internal error',
    90000004: 'message response timeout',
    90000005: 'invalid parameter',
    90100001: 'illegal operation',
    90100002: 'not support enumerate devices',
    90100003: 'no available devices',
    90100004: 'no available video input devices',
    90100005: 'no available audio input devices',
    90100006: 'no available audio output devices',
    90100007: 'room status error',
    90100008: 'websocket connection state is not "CONNECTED"',
    90100009: 'wait server config fail',
    90100010: 'publish response fail',
    90100011: 'current region is not covered, service unavailable',
    90100012: 'websocket connect timeout',
    90100013: 'websocket reconnect timeout',
    90100014: 'websocket is not open',
    90100015: 'websocket connection state is idle, interrupt operation',
    90100016: 'websocket connect error',
    90100017: 'capture failed, permission denied',
    90100018: 'capture failed, Constraint parameter invalid',
    90100019: 'capture failed, requested device not found',
    90100020: 'capture failed, maybe device is occupied by other application',
    90100021: "the user didn't interact with the document first, please trigger by gesture",
    90100022: 'the user role have no permission to operate',
    90100023: 'the answer sdp is invalid',
    90100024: 'the upstream media is not supported',
    90100025: 'the browser does not support RTC',
    90100030: 'signature expired',
    90100031: 'signature invalid',
    90100104: 'server internal exception',
    90100107: 'websocket is unsupported',
    90100108: 'request too frequently',
    90100201: 'request parameter is invalid',
    90100203: 'join room fail',
    90100204: 'joined already',
    90100207: 'stream is pushed already',
    90100213: 'invalid subscribe info',
    90100217: 'overload room capacity',
    90100224: 'room is released',
    90100225: 'user has been kicked out',
    90100227: 'room is not exist',
    90100229: 'role is unchanged',
    90100241: 'switch role is unsupported',
    90100246: 'the number of anchors has reached the maximum',
    90100247: 'topn invalid parameters',
    90100250: 'the number of desktop streams has reached the maximum'
  };

  class RtcError extends Error {
    constructor(code, msg, detail, serverCode) {
      var text = msg || ERROR_MESSAGES[code] || 'error ' + code;
      super(detail ? text + ' (' + detail + ')' : text);
      this.name = 'RtcError';
      this.code = code;
      this.msg = text;
      this.detail = detail || undefined;
      this.serverCode = serverCode || undefined;
    }

    getCode() { return this.code; }

    getMsg() { return this.msg; }

    toString() { return 'RtcError(' + this.code + ', ' + this.msg + (this.detail ? ': ' + this.detail : '') + ')'; }
  }

  function rtcError(code, detail) { return new RtcError(code, ERROR_MESSAGES[code], detail); }

  function badParam(detail) { return rtcError(RtcErrorCode.RTC_ERR_CODE_INVALID_PARAMETER, detail); }

  function illegal(detail) { return rtcError(RtcErrorCode.RTC_ERR_CODE_INVALID_OPERATION, detail); }

  function asRtcError(e) {
    if (e instanceof RtcError) return e;
    return rtcError(RtcErrorCode.RTC_ERR_CODE_RTC_SDK_ERROR, e && (e.message || String(e)));
  }

  /** The result of LocalStream.initialize(): an RtcError with the outcome per media type. */
  class StreamInitializeResult extends RtcError {
    constructor(code, msg, results) {
      super(code, msg);
      this.name = 'StreamInitializeResult';
      this.results = results || [];
    }

    getMediaCaptureResult() { return this.results.slice(); }

    getMediaCaptureResultByType(type) {
      for (var i = 0; i < this.results.length; i++) {
        if (this.results[i].type === type) return this.results[i];
      }
      return undefined;
    }
  }

  function captureError(e) {
    if (e instanceof RtcError) return e;
    var name = e && e.name;
    var detail = e && e.message;
    if (name === 'NotAllowedError' || name === 'PermissionDeniedError' || name === 'SecurityError') {
      return rtcError(RtcErrorCode.RTC_ERR_CODE_CAPTURE_PERMISSION_DENIED, detail);
    }
    if (name === 'OverconstrainedError' || name === 'ConstraintNotSatisfiedError') {
      return rtcError(RtcErrorCode.RTC_ERR_CODE_CAPTURE_OVER_CONSTRAINED, (e.constraint || '') + ' ' + (detail || ''));
    }
    if (name === 'NotFoundError' || name === 'DevicesNotFoundError') {
      return rtcError(RtcErrorCode.RTC_ERR_CODE_CAPTURE_DEVICE_NOT_FOUND, detail);
    }
    if (name === 'NotReadableError' || name === 'TrackStartError' || name === 'AbortError') {
      return rtcError(RtcErrorCode.RTC_ERR_CODE_CAPTURE_DEVICE_NOT_READABLE, detail);
    }
    return rtcError(RtcErrorCode.RTC_ERR_CODE_RTC_SDK_ERROR, detail);
  }

  // ------------------------------------------------------------------ small helpers

  var ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  function isObj(x) { return x !== null && typeof x === 'object' && !Array.isArray(x); }

  function isNum(x) { return typeof x === 'number' && isFinite(x); }

  function randomHex(bytes) {
    var a = new Uint8Array(bytes);
    if (typeof crypto !== 'undefined' && crypto.getRandomValues) {
      crypto.getRandomValues(a);
    } else {
      for (var i = 0; i < bytes; i++) a[i] = Math.floor(Math.random() * 256);
    }
    return Array.prototype.map.call(a, function (b) { return ('0' + b.toString(16)).slice(-2); }).join('');
  }

  function toList(x) {
    if (x === undefined || x === null) return null;
    return Array.isArray(x) ? x.slice() : [x];
  }

  function live(track) { return !!track && track.readyState === 'live'; }

  function mediaDevices() {
    return typeof navigator !== 'undefined' && navigator.mediaDevices ? navigator.mediaDevices : null;
  }

  function streamKey(userId, type) { return userId + '\u0000' + type; }

  // Server location: "host[:port]", "http(s)://host[:port][/prefix]" or "ws(s)://...".
  function normalizeBase(server) {
    var s = String(server).trim();
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) {
      var secure = typeof location !== 'undefined' && location.protocol === 'https:';
      s = (secure ? 'https://' : 'http://') + s;
    }
    return s.replace(/\/+$/, '');
  }

  function signallingUrl(base) {
    var m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(base);
    var scheme = m[1].toLowerCase();
    var rest = m[2].replace(/\/+$/, '');
    scheme = scheme === 'https' ? 'wss' : scheme === 'http' ? 'ws' : scheme;
    if (!/\/signalling$/.test(rest)) rest += '/signalling';
    return scheme + '://' + rest;
  }

  // Where this script was loaded from, minus "/sdk/hrtc.js": the default server.
  var SCRIPT_BASE = (function () {
    try {
      if (scriptUrl) {
        var u = new URL(scriptUrl, typeof location !== 'undefined' ? location.href : undefined);
        if (u.protocol === 'http:' || u.protocol === 'https:') {
          var prefix = u.pathname.replace(/\/sdk\/[^/]*$/, '');
          if (prefix === u.pathname) prefix = '';
          return (u.origin + prefix).replace(/\/+$/, '');
        }
      }
    } catch (e) { /* fall through */ }
    if (typeof location !== 'undefined' && /^https?:$/.test(location.protocol)) return location.origin;
    return null;
  }());

  // ------------------------------------------------------------------ events

  class Emitter {
    constructor() { this._handlers = Object.create(null); }

    on(event, handler) {
      if (typeof event !== 'string' || typeof handler !== 'function') {
        log('error', 'on(event, handler): event must be a string and handler a function');
        return;
      }
      (this._handlers[event] = this._handlers[event] || []).push(handler);
    }

    off(event, handler) {
      var list = this._handlers[event];
      if (!list) return;
      if (handler === undefined) {
        delete this._handlers[event];
        return;
      }
      var i = list.indexOf(handler);
      if (i >= 0) list.splice(i, 1);
    }

    _emit(event, payload) {
      var list = this._handlers[event];
      if (!list || !list.length) return;
      list.slice().forEach(function (handler) {
        try {
          var r = handler(payload);
          if (r && typeof r.catch === 'function') {
            r.catch(function (e) { log('error', 'handler of "' + event + '" failed:', e); });
          }
        } catch (e) {
          log('error', 'handler of "' + event + '" failed:', e);
        }
      });
    }
  }

  // ------------------------------------------------------------------ profiles (client-sdk.md §8.8-8.10)

  // name: [width, height, frameRate, minBitrate kbit/s, maxBitrate kbit/s]
  var VIDEO_PROFILES = {
    '90p_1': [160, 90, 15, 64, 110],
    '90p_2': [120, 90, 15, 64, 110],
    '120p_1': [160, 120, 15, 64, 120],
    '120p_2': [120, 120, 15, 64, 110],
    '180p_1': [320, 180, 15, 80, 320],
    '180p_2': [240, 180, 15, 80, 170],
    '180p_3': [180, 180, 15, 64, 130],
    '240p_1': [320, 240, 15, 100, 400],
    '240p_2': [240, 240, 15, 80, 320],
    '270p_1': [480, 270, 15, 160, 600],
    '300p_1': [400, 300, 15, 200, 500],
    '360p_1': [640, 360, 15, 200, 800],
    '360p_2': [480, 360, 15, 200, 700],
    '360p_3': [360, 360, 15, 150, 600],
    '450p_1': [800, 450, 15, 300, 950],
    '480p_1': [640, 480, 15, 250, 900],
    '480p_2': [480, 480, 15, 200, 800],
    '540p_1': [960, 540, 15, 400, 1000],
    '630p_1': [1120, 630, 15, 450, 1150],
    '720p_1': [1280, 720, 15, 500, 1500],
    '720p_2': [960, 720, 15, 450, 1100],
    '1080p_1': [1920, 1080, 15, 600, 2000],
    '1080p_2': [1440, 1080, 15, 550, 1700]
  };
  var DEFAULT_VIDEO_PROFILE = '360p_2';

  // name: [sampleRate Hz, channels, bitrate kbit/s]
  var AUDIO_PROFILES = {
    low: [16000, 1, 24],
    standard: [48000, 1, 40],
    high: [48000, 1, 128]
  };

  // name: [width, height, frameRate, bitrate kbit/s]
  var SCREEN_PROFILES = {
    '720p': [1280, 720, 15, 1200],
    '1080p': [1920, 1080, 15, 2000]
  };

  function namedVideoProfile(name) {
    var p = VIDEO_PROFILES[name];
    return { name: name, width: p[0], height: p[1], frameRate: p[2], minBitrate: p[3] * 1000, maxBitrate: p[4] * 1000 };
  }

  function positive(x) { return isNum(x) && x > 0; }

  /** A video profile from a name or an RTCVideoProfile; null when it is not valid. */
  function parseVideoProfile(profile) {
    if (typeof profile === 'string') return VIDEO_PROFILES[profile] ? namedVideoProfile(profile) : null;
    if (!isObj(profile)) return null;
    var base = namedVideoProfile(DEFAULT_VIDEO_PROFILE);
    var fields = ['width', 'height', 'frameRate', 'minBitrate', 'maxBitrate'];
    for (var i = 0; i < fields.length; i++) {
      var v = profile[fields[i]];
      if (v === undefined) continue;
      if (!positive(v)) return null;
    }
    var width = profile.width !== undefined ? Math.round(profile.width) : base.width;
    var height = profile.height !== undefined ? Math.round(profile.height) : base.height;
    var p = {
      name: null,
      width: width,
      height: height,
      frameRate: profile.frameRate !== undefined ? Math.round(profile.frameRate) : base.frameRate,
      minBitrate: profile.minBitrate !== undefined ? profile.minBitrate : base.minBitrate,
      maxBitrate: profile.maxBitrate !== undefined ? profile.maxBitrate : base.maxBitrate
    };
    if (p.width > 4096 || p.height > 4096 || p.frameRate > 120 || p.minBitrate > p.maxBitrate) return null;
    return p;
  }

  function parseAudioProfile(profile) {
    var base = AUDIO_PROFILES.standard;
    if (typeof profile === 'string') {
      var a = AUDIO_PROFILES[profile];
      return a ? { name: profile, sampleRate: a[0], channelCount: a[1], bitrate: a[2] * 1000 } : null;
    }
    if (!isObj(profile)) return null;
    if ((profile.sampleRate !== undefined && !positive(profile.sampleRate)) ||
        (profile.channelCount !== undefined && [1, 2].indexOf(profile.channelCount) < 0) ||
        (profile.bitrate !== undefined && !positive(profile.bitrate))) return null;
    return {
      name: null,
      sampleRate: profile.sampleRate !== undefined ? profile.sampleRate : base[0],
      channelCount: profile.channelCount !== undefined ? profile.channelCount : base[1],
      bitrate: profile.bitrate !== undefined ? profile.bitrate : base[2] * 1000
    };
  }

  function parseScreenProfile(profile) {
    var base = SCREEN_PROFILES['720p'];
    var p;
    if (typeof profile === 'string') {
      p = SCREEN_PROFILES[profile];
      return p ? { name: profile, width: p[0], height: p[1], frameRate: p[2], minBitrate: 0, maxBitrate: p[3] * 1000 } : null;
    }
    if (!isObj(profile)) return null;
    var fields = ['width', 'height', 'frameRate', 'bitrate'];
    for (var i = 0; i < fields.length; i++) {
      if (profile[fields[i]] !== undefined && !positive(profile[fields[i]])) return null;
    }
    return {
      name: null,
      width: profile.width !== undefined ? Math.round(profile.width) : base[0],
      height: profile.height !== undefined ? Math.round(profile.height) : base[1],
      frameRate: profile.frameRate !== undefined ? Math.round(profile.frameRate) : base[2],
      minBitrate: 0,
      maxBitrate: profile.bitrate !== undefined ? profile.bitrate : base[3] * 1000
    };
  }

  function profileInfo(res) {
    return {
      resolutionId: res.id,
      hasTrack: live(res.track),
      width: res.profile.width,
      height: res.profile.height,
      frameRate: res.profile.frameRate,
      minBitrate: res.profile.minBitrate,
      maxBitrate: res.profile.maxBitrate
    };
  }

  function videoConstraints(p, cameraId, facingMode) {
    var c = { width: { ideal: p.width }, height: { ideal: p.height }, frameRate: { ideal: p.frameRate } };
    if (cameraId) c.deviceId = { exact: cameraId };
    else if (facingMode) c.facingMode = facingMode;
    return c;
  }

  function audioConstraints(ap, microphoneId) {
    var c = {
      sampleRate: { ideal: ap.sampleRate },
      channelCount: { ideal: ap.channelCount },
      echoCancellation: true,
      noiseSuppression: true,
      autoGainControl: true
    };
    if (microphoneId) c.deviceId = { exact: microphoneId };
    return c;
  }

  async function getUserMedia(constraints) {
    var md = mediaDevices();
    if (!md || !md.getUserMedia) {
      throw rtcError(RtcErrorCode.RTC_ERR_CODE_MEDIA_UPSTREAM_UNSUPPORTED, 'getUserMedia is unavailable (https or localhost needed)');
    }
    return md.getUserMedia(constraints);
  }

  /** A clone of `base` scaled to the profile: each resolution is its own track. */
  async function derivedTrack(base, p) {
    var t = base.clone();
    try {
      await t.applyConstraints({ width: { ideal: p.width }, height: { ideal: p.height }, frameRate: { ideal: p.frameRate } });
    } catch (e) {
      log('warn', 'applyConstraints for ' + p.width + 'x' + p.height + ' failed:', e && e.message);
    }
    return t;
  }

  // ------------------------------------------------------------------ WebAudio

  var sharedAudioContext = null;

  function audioContext() {
    if (!sharedAudioContext) {
      var Ctx = typeof AudioContext !== 'undefined' ? AudioContext
        : typeof webkitAudioContext !== 'undefined' ? webkitAudioContext : null; // eslint-disable-line no-undef
      if (!Ctx) throw illegal('WebAudio is not supported by this browser');
      sharedAudioContext = new Ctx();
    }
    if (sharedAudioContext.state === 'suspended') {
      sharedAudioContext.resume().catch(function () { /* resumed on the next user gesture */ });
    }
    return sharedAudioContext;
  }

  // ------------------------------------------------------------------ SDP / codec helpers

  /** Offer only these codecs, in this order (no RTX/RED/FEC: the SFU forwards one codec per m-line). */
  function preferCodec(transceiver, kind, mimes) {
    try {
      if (typeof transceiver.setCodecPreferences !== 'function' || typeof RTCRtpSender === 'undefined' ||
          typeof RTCRtpSender.getCapabilities !== 'function') return false;
      var caps = RTCRtpSender.getCapabilities(kind);
      var chosen = [];
      mimes.forEach(function (mime) {
        (caps ? caps.codecs : []).forEach(function (c) {
          if (c.mimeType.toLowerCase() !== mime) return;
          // H.264: packetization-mode 1 only (what the SFU negotiates).
          if (mime === 'video/h264' && !/packetization-mode=1/.test(c.sdpFmtpLine || '')) return;
          chosen.push(c);
        });
      });
      if (!chosen.length) return false;
      transceiver.setCodecPreferences(chosen);
      return true;
    } catch (e) {
      log('debug', 'setCodecPreferences failed, reordering the SDP instead:', e && e.message);
      return false;
    }
  }

  /** Fallback for browsers without setCodecPreferences: put `codec` first in every m=`kind` line. */
  function reorderCodecs(sdp, kind, codec) {
    var lines = sdp.split('\r\n');
    var sections = [];
    lines.forEach(function (line, i) { if (line.indexOf('m=') === 0) sections.push(i); });
    sections.push(lines.length);
    for (var s = 0; s < sections.length - 1; s++) {
      var start = sections[s];
      if (lines[start].indexOf('m=' + kind + ' ') !== 0) continue;
      var pts = [];
      for (var i = start + 1; i < sections[s + 1]; i++) {
        var m = /^a=rtpmap:(\d+) ([^/]+)\//.exec(lines[i]);
        if (m && m[2].toLowerCase() === codec.toLowerCase()) pts.push(m[1]);
      }
      if (!pts.length) continue;
      var parts = lines[start].split(' ');
      var head = parts.slice(0, 3);
      var payloads = parts.slice(3);
      lines[start] = head.concat(payloads.filter(function (p) { return pts.indexOf(p) >= 0; }),
        payloads.filter(function (p) { return pts.indexOf(p) < 0; })).join(' ');
    }
    return lines.join('\r\n');
  }

  function waitIceGathering(pc, timeoutMs) {
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise(function (resolve) {
      var timer = setTimeout(function () {
        log('warn', 'ICE gathering did not complete in ' + timeoutMs + ' ms: sending the candidates found so far');
        done();
      }, timeoutMs);
      function done() {
        clearTimeout(timer);
        pc.removeEventListener('icegatheringstatechange', check);
        resolve();
      }
      function check() { if (pc.iceGatheringState === 'complete') done(); }
      pc.addEventListener('icegatheringstatechange', check);
    });
  }

  async function statsList(target) {
    var out = [];
    if (!target || typeof target.getStats !== 'function') return out;
    try {
      var report = await target.getStats();
      report.forEach(function (s) { out.push(s); });
    } catch (e) {
      log('debug', 'getStats failed:', e && e.message);
    }
    return out;
  }

  function firstOfType(list, type, kind) {
    for (var i = 0; i < list.length; i++) {
      if (list[i].type === type && (!kind || list[i].kind === kind || list[i].mediaType === kind)) return list[i];
    }
    return null;
  }

  function selectedPair(list) {
    var byId = {};
    list.forEach(function (s) { byId[s.id] = s; });
    for (var i = 0; i < list.length; i++) {
      if (list[i].type === 'transport' && list[i].selectedCandidatePairId && byId[list[i].selectedCandidatePairId]) {
        return byId[list[i].selectedCandidatePairId];
      }
    }
    for (var j = 0; j < list.length; j++) {
      var s = list[j];
      if (s.type === 'candidate-pair' && s.state === 'succeeded' && (s.nominated || s.selected)) return s;
    }
    return null;
  }

  function qualityOf(lossRate, rttMs) {
    // 1 excellent ... 5 very poor (client-sdk.md §8.6); 0 unknown and 6 disconnected are decided by the caller.
    if (lossRate < 0.01 && rttMs < 150) return 1;
    if (lossRate < 0.03 && rttMs < 250) return 2;
    if (lossRate < 0.08 && rttMs < 400) return 3;
    if (lossRate < 0.15 && rttMs < 800) return 4;
    return 5;
  }

  // ------------------------------------------------------------------ Stream

  var OBJECT_FITS = ['contain', 'cover', 'fill'];

  class Stream extends Emitter {
    constructor() {
      super();
      this._players = { audio: null, video: new Map() };
      this._volume = 100;
      this._sinkId = null;
      this._level = null;
    }

    // --- abstract parts (LocalStream / RemoteStream) ---
    _videoTrackFor() { return null; }

    _audioForPlay() { return null; }

    _resolutionIds() { return []; }

    _defaultFit() { return 'cover'; }

    _mirror() { return false; }

    _effectiveVolume() { return this._volume / 100; }

    _forceMuted() { return false; }

    // --- playback ---

    async play(elementId, options) {
      if (typeof elementId !== 'string' || !elementId) throw badParam('elementId must be a non-empty string');
      if (options !== undefined && options !== null && !isObj(options)) throw badParam('options must be an object');
      options = options || {};
      if (typeof document === 'undefined') throw illegal('play() needs a DOM');
      var container = document.getElementById(elementId);
      if (!container) throw badParam('no element with id "' + elementId + '"');
      var fit = options.objectFit === undefined ? this._defaultFit() : options.objectFit;
      if (OBJECT_FITS.indexOf(fit) < 0) throw badParam('objectFit must be contain, cover or fill');
      var rid = options.resolutionId;
      if (rid !== undefined && rid !== null && this._resolutionIds().indexOf(rid) < 0) {
        throw badParam('unknown resolutionId "' + rid + '"');
      }
      var waits = [];
      if (this.hasVideo()) {
        var key = rid || '';
        var vp = this._players.video.get(key);
        if (!vp) {
          vp = this._makePlayer('video', key);
          this._players.video.set(key, vp);
        }
        vp.el.style.objectFit = fit;
        vp.el.style.transform = this._mirror() ? 'scaleX(-1)' : '';
        if (vp.wrapper.parentNode !== container) container.appendChild(vp.wrapper);
        vp.stopped = false;
        waits.push(this._startPlayer(vp));
      }
      if (this.hasAudio()) {
        var ap = this._players.audio;
        if (!ap) {
          ap = this._players.audio = this._makePlayer('audio', '');
        }
        ap.muted = !!options.muted;
        if (ap.wrapper.parentNode !== container) container.appendChild(ap.wrapper);
        ap.stopped = false;
        waits.push(this._startPlayer(ap));
      }
      var errors = (await Promise.all(waits)).filter(Boolean);
      if (errors.length) throw errors[0];
    }

    _makePlayer(type, key) {
      var el = document.createElement(type);
      el.autoplay = true;
      el.setAttribute('playsinline', '');
      el.playsInline = true;
      var wrapper = document.createElement('div');
      wrapper.className = 'hrtc-player hrtc-' + type + '-player';
      wrapper.setAttribute('data-stream-id', this.getId() || '');
      if (type === 'video') {
        el.muted = true; // the stream's audio plays through its own <audio> element
        el.style.cssText = 'width:100%;height:100%;display:block;background:#000;';
        wrapper.style.cssText = 'width:100%;height:100%;position:relative;overflow:hidden;';
        wrapper.setAttribute('data-resolution-id', key);
      } else {
        wrapper.style.display = 'none';
      }
      wrapper.appendChild(el);
      var player = { type: type, key: key, el: el, wrapper: wrapper, track: null, state: 'NONE', stopped: false, muted: false };
      var self = this;
      el.addEventListener('playing', function () { self._playerState(player, 'PLAYING', 'playing'); });
      el.addEventListener('pause', function () {
        if (!player.stopped) self._playerState(player, 'PAUSED', 'pause');
      });
      el.addEventListener('ended', function () { self._playerState(player, 'STOPPED', 'ended'); });
      return player;
    }

    _playerState(p, state, reason) {
      if (p.state === state) return;
      p.state = state;
      var id = '';
      if (p.type === 'video') id = p.key || this._highestResolutionId() || '';
      this._emit('player-state-change', { type: p.type, id: id, state: state, reason: reason });
    }

    _highestResolutionId() { return this._resolutionIds()[0]; }

    async _startPlayer(p) {
      var track = p.type === 'audio' ? this._audioForPlay() : this._videoTrackFor(p.key || undefined);
      if (p.type === 'audio') {
        p.el.muted = p.muted || this._forceMuted();
        p.el.volume = Math.max(0, Math.min(1, this._effectiveVolume()));
        if (this._sinkId && typeof p.el.setSinkId === 'function') {
          p.el.setSinkId(this._sinkId).catch(function (e) { log('warn', 'setSinkId failed:', e && e.message); });
        }
      }
      if (p.stopped) return null;
      if (track !== p.track) {
        p.track = track;
        p.el.srcObject = track ? new MediaStream([track]) : null;
      }
      if (!track) return null;
      try {
        // A MediaStream play() may wait for the first frame: do not hang the caller on it.
        await Promise.race([p.el.play(), sleep(3000)]);
        return null;
      } catch (e) {
        if (e && e.name === 'NotAllowedError') {
          this._playerState(p, 'PAUSED', 'autoplay');
          return rtcError(RtcErrorCode.RTC_ERR_CODE_PLAY_NOT_ALLOWED, p.type);
        }
        if (e && e.name === 'AbortError') return null; // srcObject changed meanwhile
        log('warn', 'play() of ' + p.type + ' failed:', e && e.message);
        return null;
      }
    }

    _refreshPlayers() {
      var self = this;
      var all = [];
      this._players.video.forEach(function (p) { all.push(p); });
      if (this._players.audio) all.push(this._players.audio);
      all.forEach(function (p) {
        if (!p.stopped) self._startPlayer(p);
      });
    }

    _selectPlayers(option) {
      var out = [];
      var audio = true;
      var video = true;
      var ids = null;
      if (option !== undefined && option !== null) {
        if (!isObj(option)) throw badParam('option must be an object');
        audio = !!option.audio;
        video = !!option.video;
        if (video && option.resolutionIds !== undefined && option.resolutionIds !== null) {
          ids = toList(option.resolutionIds);
        }
      }
      if (audio && this._players.audio) out.push(this._players.audio);
      if (video) {
        var self = this;
        this._players.video.forEach(function (p) {
          var rid = p.key || self._highestResolutionId();
          if (!ids || ids.indexOf(rid) >= 0) out.push(p);
        });
      }
      return out;
    }

    stop(option) {
      var self = this;
      this._selectPlayers(option).forEach(function (p) {
        p.stopped = true;
        try { p.el.pause(); } catch (e) { /* detached */ }
        p.el.srcObject = null;
        p.track = null;
        self._playerState(p, 'STOPPED', 'stop');
      });
    }

    async resume(option) {
      var waits = [];
      var self = this;
      this._selectPlayers(option).forEach(function (p) {
        p.stopped = false;
        waits.push(self._startPlayer(p));
      });
      var errors = (await Promise.all(waits)).filter(Boolean);
      if (errors.length) throw errors[0];
    }

    close(option) {
      var self = this;
      this._selectPlayers(option).forEach(function (p) {
        p.stopped = true;
        try { p.el.pause(); } catch (e) { /* detached */ }
        p.el.srcObject = null;
        if (p.wrapper.parentNode) p.wrapper.parentNode.removeChild(p.wrapper);
        self._playerState(p, 'STOPPED', 'close');
        if (p.type === 'audio') self._players.audio = null;
        else self._players.video.delete(p.key);
      });
    }

    // --- audio ---

    async setAudioOutput(deviceId) {
      if (typeof deviceId !== 'string') throw badParam('deviceId must be a string');
      var probe = typeof HTMLMediaElement !== 'undefined' ? HTMLMediaElement.prototype : null;
      if (!probe || typeof probe.setSinkId !== 'function') {
        throw illegal('this browser cannot choose the audio output device');
      }
      this._sinkId = deviceId;
      var p = this._players.audio;
      if (p) {
        try {
          await p.el.setSinkId(deviceId);
        } catch (e) {
          throw rtcError(RtcErrorCode.RTC_ERR_CODE_NO_AVAILABLE_AUDIO_OUTPUT_DEVICES, e && e.message);
        }
      }
    }

    setAudioVolume(volume) {
      if (!isNum(volume) || volume < 0 || volume > 100) throw badParam('volume must be a number in [0, 100]');
      this._volume = volume;
      var p = this._players.audio;
      if (p) p.el.volume = Math.max(0, Math.min(1, this._effectiveVolume()));
    }

    getAudioLevel() {
      var track = this.getAudioTrack();
      if (!live(track)) return 0;
      try {
        var ctx = audioContext();
        if (!this._level || this._level.track !== track) {
          if (this._level) this._level.source.disconnect();
          var source = ctx.createMediaStreamSource(new MediaStream([track]));
          var analyser = ctx.createAnalyser();
          analyser.fftSize = 1024;
          source.connect(analyser);
          this._level = { track: track, source: source, analyser: analyser, data: new Float32Array(analyser.fftSize) };
        }
        var l = this._level;
        l.analyser.getFloatTimeDomainData(l.data);
        var sum = 0;
        for (var i = 0; i < l.data.length; i++) sum += l.data[i] * l.data[i];
        return Math.min(1, Math.sqrt(sum / l.data.length));
      } catch (e) {
        log('debug', 'getAudioLevel failed:', e && e.message);
        return 0;
      }
    }

    _releaseLevel() {
      if (this._level) {
        try { this._level.source.disconnect(); } catch (e) { /* already gone */ }
        this._level = null;
      }
    }
  }

  // ------------------------------------------------------------------ LocalStream

  class LocalStream extends Stream {
    constructor(config) {
      super();
      this._cfg = config;
      this._screen = !!config.screen;
      this._localId = 'local-' + randomHex(6);
      this._streamId = null;
      this._audioProfile = parseAudioProfile('standard');
      this._audioTrack = null;
      this._audioOwned = false;
      this._resolutions = []; // {id, profile, track, owned}
      this._initialized = false;
      this._initializing = false;
      this._pub = null; // set by Client while published
      this._audioMuted = false;
      this._videoMuted = false;
      this._mix = null; // WebAudio graph when mixing a file or bound screen audio
      this._mixing = null;
      this._boundScreen = null; // {stream, source, gain, muteMain} on the main stream
      this._boundTo = null; // on a screen stream: the main stream that carries its audio
      this._republishTimer = null;
      if (this._screen) {
        this._resolutions.push({ id: randomHex(4), profile: parseScreenProfile('720p'), track: null, owned: true });
      } else if (config.video || config.videoSource) {
        this._resolutions.push({ id: randomHex(4), profile: namedVideoProfile(DEFAULT_VIDEO_PROFILE), track: null, owned: true });
      }
    }

    // --- identity ---

    getId() { return this._streamId || this._localId; }

    getUserId() { return this._cfg.userId; }

    getType() { return 'local'; }

    _pubType() { return this._screen ? 'auxiliary' : 'main'; }

    hasAudio() { return live(this._audioTrack); }

    hasVideo() { return this._resolutions.some(function (r) { return live(r.track); }); }

    getAudioTrack() { return this._audioTrack || undefined; }

    getVideoTrack(resolutionId) {
      var r = resolutionId ? this._resolution(resolutionId) : this._highest(true);
      return r && r.track ? r.track : undefined;
    }

    getStreamInfo() {
      return {
        videoProfiles: this._sorted().map(profileInfo),
        audioProfile: {
          sampleRate: this._audioProfile.sampleRate,
          channelCount: this._audioProfile.channelCount,
          bitrate: this._audioProfile.bitrate
        }
      };
    }

    _resolution(id) {
      for (var i = 0; i < this._resolutions.length; i++) if (this._resolutions[i].id === id) return this._resolutions[i];
      return null;
    }

    _sorted() {
      return this._resolutions.slice().sort(function (a, b) {
        return b.profile.width * b.profile.height - a.profile.width * a.profile.height;
      });
    }

    _highest(withTrack) {
      var list = this._sorted();
      for (var i = 0; i < list.length; i++) if (!withTrack || live(list[i].track)) return list[i];
      return null;
    }

    _resolutionIds() { return this._sorted().map(function (r) { return r.id; }); }

    _videoTrackFor(rid) {
      var r = rid ? this._resolution(rid) : this._highest(true);
      return r && live(r.track) ? r.track : null;
    }

    _audioForPlay() { return live(this._audioTrack) ? this._audioTrack : null; }

    _defaultFit() { return this._screen ? 'contain' : 'cover'; }

    _mirror() { return !!this._cfg.mirror && !this._screen; }

    _publishedResolutions() { return this._resolutions.filter(function (r) { return live(r.track); }); }

    /** The audio that goes to the publisher connection: the microphone, or the WebAudio mix. */
    _sendAudioTrack() {
      if (this._boundTo) return null; // carried by the bound main stream
      if (this._mixing || this._boundScreen) {
        this._mixConnectMic();
        return this._mix.dest.stream.getAudioTracks()[0];
      }
      return live(this._audioTrack) ? this._audioTrack : null;
    }

    _hasSendableMedia() { return !!this._sendAudioTrack() || this._publishedResolutions().length > 0; }

    // --- capture ---

    async initialize() {
      if (this._initializing) throw illegal('initialize() is already running');
      this._initializing = true;
      try {
        var results = this._screen ? await this._initScreen() : await this._initCamera();
        this._initialized = true;
        this._applyMuteState();
        var failed = results.filter(function (r) { return r.error; });
        if (failed.length) {
          throw new StreamInitializeResult(failed[0].error.getCode(), failed[0].error.getMsg(), results);
        }
        return new StreamInitializeResult(RtcErrorCode.RTC_ERR_CODE_SUCCESS, 'success', results);
      } finally {
        this._initializing = false;
      }
    }

    async _initScreen() {
      var md = mediaDevices();
      var res = this._resolutions[0];
      var results = [];
      if (!md || typeof md.getDisplayMedia !== 'function') {
        results.push({ type: 'video', error: rtcError(RtcErrorCode.RTC_ERR_CODE_MEDIA_UPSTREAM_UNSUPPORTED, 'getDisplayMedia') });
        return results;
      }
      try {
        var p = res.profile;
        var ms = await md.getDisplayMedia({
          video: { width: { ideal: p.width }, height: { ideal: p.height }, frameRate: { ideal: p.frameRate } },
          audio: !!this._cfg.screenAudio
        });
        var vt = ms.getVideoTracks()[0];
        this._setResolutionTrack(res, vt, true);
        results.push({ type: 'video', track: vt });
        if (this._cfg.screenAudio) {
          var at = ms.getAudioTracks()[0];
          if (at) {
            this._setAudioTrack(at, true);
            results.push({ type: 'audio', track: at });
          } else {
            results.push({ type: 'audio', error: rtcError(RtcErrorCode.RTC_ERR_CODE_CAPTURE_DEVICE_NOT_FOUND, 'no screen audio was shared') });
          }
        }
      } catch (e) {
        results.push({ type: 'video', error: captureError(e) });
      }
      return results;
    }

    async _initCamera() {
      var cfg = this._cfg;
      var results = [];
      var main = this._resolutions[0] || null;
      if (cfg.audioSource) {
        if (typeof MediaStreamTrack === 'undefined' || !(cfg.audioSource instanceof MediaStreamTrack) || cfg.audioSource.kind !== 'audio') {
          results.push({ type: 'audio', error: badParam('audioSource must be an audio MediaStreamTrack') });
        } else {
          this._setAudioTrack(cfg.audioSource, false);
          results.push({ type: 'audio', track: cfg.audioSource });
        }
      }
      if (cfg.videoSource) {
        if (typeof MediaStreamTrack === 'undefined' || !(cfg.videoSource instanceof MediaStreamTrack) || cfg.videoSource.kind !== 'video') {
          results.push({ type: 'video', error: badParam('videoSource must be a video MediaStreamTrack') });
        } else {
          var s = cfg.videoSource.getSettings ? cfg.videoSource.getSettings() : {};
          if (s.width && s.height) {
            main.profile = Object.assign({}, main.profile, { name: null, width: s.width, height: s.height, frameRate: Math.round(s.frameRate || main.profile.frameRate) });
          }
          this._setResolutionTrack(main, cfg.videoSource, false);
          results.push({ type: 'video', track: cfg.videoSource });
        }
      }
      var needAudio = !!cfg.audio && !cfg.audioSource;
      var needVideo = !!cfg.video && !cfg.videoSource && !!main;
      if (needAudio || needVideo) {
        var captureRes = needVideo ? this._highest(false) : null;
        var got = await this._capture(needAudio, captureRes ? captureRes.profile : null, cfg.microphoneId, cfg.cameraId, cfg.facingMode);
        if (needAudio) {
          if (got.audio instanceof RtcError) results.push({ type: 'audio', error: got.audio });
          else {
            this._setAudioTrack(got.audio, true);
            results.push({ type: 'audio', track: got.audio });
          }
        }
        if (needVideo) {
          if (got.video instanceof RtcError) results.push({ type: 'video', error: got.video });
          else {
            this._setResolutionTrack(captureRes, got.video, true);
            results.push({ type: 'video', track: got.video });
          }
        }
      }
      await this._deriveMissing();
      return results;
    }

    /** getUserMedia for audio and/or video; per-kind results (track or RtcError). */
    async _capture(audio, videoProfile, microphoneId, cameraId, facingMode) {
      var ac = audio ? audioConstraints(this._audioProfile, microphoneId) : false;
      var vc = videoProfile ? videoConstraints(videoProfile, cameraId, facingMode) : false;
      try {
        var ms = await getUserMedia({ audio: ac, video: vc });
        return { audio: audio ? ms.getAudioTracks()[0] : undefined, video: videoProfile ? ms.getVideoTracks()[0] : undefined };
      } catch (e) {
        if (!(audio && videoProfile)) {
          return { audio: audio ? captureError(e) : undefined, video: videoProfile ? captureError(e) : undefined };
        }
      }
      // Both together failed: find out which one does not work.
      var out = {};
      try { out.audio = (await getUserMedia({ audio: ac })).getAudioTracks()[0]; } catch (e) { out.audio = captureError(e); }
      try { out.video = (await getUserMedia({ video: vc })).getVideoTracks()[0]; } catch (e) { out.video = captureError(e); }
      return out;
    }

    /** Resolutions without a track get a scaled clone of the best live camera track. */
    async _deriveMissing() {
      var base = this._highest(true);
      if (!base) return;
      for (var i = 0; i < this._resolutions.length; i++) {
        var r = this._resolutions[i];
        if (!live(r.track)) {
          this._setResolutionTrack(r, await derivedTrack(base.track, r.profile), true);
        }
      }
    }

    _setAudioTrack(track, owned) {
      this._audioTrack = track;
      this._audioOwned = owned;
      if (track) track.enabled = !this._audioMuted;
    }

    _setResolutionTrack(res, track, owned) {
      res.track = track;
      res.owned = owned;
      if (track) {
        track.enabled = !this._videoMuted;
        if (this._screen && 'contentHint' in track) track.contentHint = 'detail';
        var self = this;
        if (this._screen) {
          track.addEventListener('ended', function () { self._emit('screen-sharing-stopped', self.getId()); });
        }
      }
    }

    _applyMuteState() {
      if (this._audioTrack) this._audioTrack.enabled = !this._audioMuted;
      if (this._mix) this._mix.dest.stream.getAudioTracks()[0].enabled = !this._audioMuted; // the mix is what is sent
      var muted = this._videoMuted;
      this._resolutions.forEach(function (r) { if (r.track) r.track.enabled = !muted; });
    }

    // --- profiles ---

    setAudioProfile(profile) {
      var p = parseAudioProfile(profile);
      if (!p) {
        log('warn', 'invalid audio profile, using "standard":', profile);
        p = parseAudioProfile('standard');
      }
      if (this._initialized) log('warn', 'setAudioProfile() should be called before initialize()');
      this._audioProfile = p;
      if (live(this._audioTrack)) {
        this._audioTrack.applyConstraints({ sampleRate: { ideal: p.sampleRate }, channelCount: { ideal: p.channelCount } })
          .catch(function (e) { log('debug', 'audio applyConstraints:', e && e.message); });
      }
      if (this._pub && this._pub.audioSender) this._pub.client._applyBandwidth();
    }

    setVideoProfile(profile, resolutionId) {
      if (this._screen) {
        log('warn', 'setVideoProfile() is for camera streams; use setScreenProfile()');
        return;
      }
      var p = parseVideoProfile(profile);
      if (!p) {
        log('warn', 'invalid video profile, using "' + DEFAULT_VIDEO_PROFILE + '":', profile);
        p = namedVideoProfile(DEFAULT_VIDEO_PROFILE);
      }
      if (this._cfg.videoSource) {
        log('warn', 'setVideoProfile() does not apply to a custom videoSource');
        return;
      }
      var res = resolutionId ? this._resolution(resolutionId) : this._highest(false);
      if (!res) {
        if (resolutionId) {
          log('error', 'setVideoProfile: unknown resolutionId', resolutionId);
          return;
        }
        res = { id: randomHex(4), profile: p, track: null, owned: true };
        this._resolutions.push(res);
      }
      res.profile = p;
      if (live(res.track)) {
        res.track.applyConstraints({ width: { ideal: p.width }, height: { ideal: p.height }, frameRate: { ideal: p.frameRate } })
          .catch(function (e) { log('warn', 'applyConstraints failed:', e && e.message); });
      }
      this._changed();
    }

    setScreenProfile(profile) {
      if (!this._screen) {
        log('warn', 'setScreenProfile() is for screen-sharing streams');
        return;
      }
      var p = parseScreenProfile(profile);
      if (!p) {
        log('warn', 'invalid screen profile, using "720p":', profile);
        p = parseScreenProfile('720p');
      }
      if (this._initialized) log('warn', 'setScreenProfile() should be called before initialize()');
      this._resolutions[0].profile = p;
      var t = this._resolutions[0].track;
      if (live(t)) {
        t.applyConstraints({ width: { ideal: p.width }, height: { ideal: p.height }, frameRate: { ideal: p.frameRate } })
          .catch(function (e) { log('debug', 'screen applyConstraints:', e && e.message); });
      }
    }

    // --- tracks ---

    async addAudioTrackCapture(microphoneId) {
      if (microphoneId !== undefined && typeof microphoneId !== 'string') throw badParam('microphoneId must be a string');
      if (this._screen) throw illegal('a screen-sharing stream has no microphone');
      if (live(this._audioTrack)) throw illegal('the stream already has audio');
      var got = await this._capture(true, null, microphoneId || this._cfg.microphoneId);
      if (got.audio instanceof RtcError) throw new StreamInitializeResult(got.audio.getCode(), got.audio.getMsg(), [{ type: 'audio', error: got.audio }]);
      this._setAudioTrack(got.audio, true);
      this._initialized = true;
      await this._audioChanged();
      return got.audio;
    }

    async addVideoTrackCapture(option) {
      if (option !== undefined && option !== null && !isObj(option)) throw badParam('option must be an object');
      option = option || {};
      if (this._screen) throw illegal('use a new screen-sharing stream instead');
      var res = option.resolutionId ? this._resolution(option.resolutionId) : this._highest(false);
      if (option.resolutionId && !res) throw badParam('unknown resolutionId');
      if (!res) {
        res = { id: randomHex(4), profile: namedVideoProfile(DEFAULT_VIDEO_PROFILE), track: null, owned: true };
        this._resolutions.push(res);
      }
      if (live(res.track)) throw illegal('the resolution already has a video track');
      var cam = option.cameraId || this._cfg.cameraId;
      var facing = null;
      if (cam === 'user' || cam === 'environment') {
        facing = cam;
        cam = null;
      }
      var got = await this._capture(false, res.profile, null, cam, facing || this._cfg.facingMode);
      if (got.video instanceof RtcError) throw new StreamInitializeResult(got.video.getCode(), got.video.getMsg(), [{ type: 'video', error: got.video }]);
      this._setResolutionTrack(res, got.video, true);
      this._initialized = true;
      await this._deriveMissing();
      this._refreshPlayers();
      this._changed();
      return got.video;
    }

    async addResolution(profile, audio) {
      var p = parseVideoProfile(profile);
      if (!p) throw badParam('invalid video profile');
      if (this._screen) throw illegal('a screen-sharing stream has one resolution');
      if (this._cfg.videoSource) throw illegal('a custom videoSource does not support several resolutions');
      if (this._resolutions.length >= 2) throw illegal('a local stream supports at most two resolutions');
      if (this._resolutions.some(function (r) { return r.profile.width === p.width && r.profile.height === p.height; })) {
        throw badParam('the stream already has a ' + p.width + 'x' + p.height + ' resolution');
      }
      var res = { id: randomHex(4), profile: p, track: null, owned: true };
      var base = this._highest(true);
      if (base) {
        this._setResolutionTrack(res, await derivedTrack(base.track, p), true);
      } else if (this._initialized) {
        var got = await this._capture(false, p, null, this._cfg.cameraId, this._cfg.facingMode);
        if (got.video instanceof RtcError) throw new StreamInitializeResult(got.video.getCode(), got.video.getMsg(), [{ type: 'video', error: got.video }]);
        this._setResolutionTrack(res, got.video, true);
      }
      this._resolutions.push(res);
      if (audio && !live(this._audioTrack) && this._initialized) {
        var a = await this._capture(true, null, this._cfg.microphoneId);
        if (a.audio instanceof RtcError) throw new StreamInitializeResult(a.audio.getCode(), a.audio.getMsg(), [{ type: 'audio', error: a.audio }]);
        this._setAudioTrack(a.audio, true);
      }
      this._changed();
      return profileInfo(res);
    }

    async removeResolution(resolutionId) {
      var res = this._resolution(resolutionId);
      if (!res) throw badParam('unknown resolutionId');
      if (res.owned && res.track) res.track.stop();
      this._resolutions.splice(this._resolutions.indexOf(res), 1);
      this.close({ video: true, resolutionIds: [resolutionId] });
      this._refreshPlayers();
      this._changed();
    }

    async addTrack(track, resolutionId) {
      if (typeof MediaStreamTrack === 'undefined' || !(track instanceof MediaStreamTrack)) throw badParam('track must be a MediaStreamTrack');
      if (track.kind === 'audio') {
        if (live(this._audioTrack)) throw illegal('the stream already has an audio track');
        this._setAudioTrack(track, false);
        await this._audioChanged();
        return;
      }
      var res;
      if (resolutionId) {
        res = this._resolution(resolutionId);
        if (!res) throw badParam('unknown resolutionId');
        if (live(res.track)) throw illegal('the resolution already has a video track');
      } else {
        var s = track.getSettings ? track.getSettings() : {};
        var w = s.width || 0;
        var h = s.height || 0;
        var same = this._resolutions.filter(function (r) { return r.profile.width === w && r.profile.height === h; })[0];
        if (same && live(same.track)) throw illegal('a video track with this resolution exists already');
        res = same || this._resolutions.filter(function (r) { return !live(r.track); })[0];
        if (!res) {
          if (this._resolutions.length >= 2) throw illegal('a local stream supports at most two resolutions');
          res = { id: randomHex(4), profile: namedVideoProfile(DEFAULT_VIDEO_PROFILE), track: null, owned: false };
          this._resolutions.push(res);
        }
        if (w && h) {
          res.profile = Object.assign({}, res.profile, { name: null, width: w, height: h, frameRate: Math.round(s.frameRate || res.profile.frameRate) });
        }
      }
      this._setResolutionTrack(res, track, false);
      this._initialized = true;
      this._refreshPlayers();
      this._changed();
    }

    async removeTrack(track) {
      if (!track) throw badParam('track is required');
      if (track === this._audioTrack) {
        if (this._audioOwned) track.stop();
        this._audioTrack = null;
        this._releaseLevel();
        this.close({ audio: true });
        await this._audioChanged();
        return;
      }
      var res = this._resolutions.filter(function (r) { return r.track === track; })[0];
      if (!res) throw badParam('the track is not part of this stream');
      if (res.owned) track.stop();
      res.track = null;
      this._refreshPlayers();
      this._changed();
    }

    async replaceTrack(track, type, resolutionId) {
      if (typeof MediaStreamTrack === 'undefined' || !(track instanceof MediaStreamTrack)) throw badParam('track must be a MediaStreamTrack');
      if (type !== 'audio' && type !== 'video') throw badParam('type must be "audio" or "video"');
      if (track.kind !== type) throw badParam('the track is not of type ' + type);
      if (type === 'audio') {
        var old = this._audioTrack;
        var ownedOld = this._audioOwned;
        this._setAudioTrack(track, false);
        if (old && old !== track && ownedOld) old.stop();
        await this._audioChanged();
        return;
      }
      var res = resolutionId ? this._resolution(resolutionId) : this._highest(false);
      if (!res) throw badParam('unknown resolutionId');
      var prev = res.track;
      if (prev && prev !== track && res.owned) prev.stop();
      this._setResolutionTrack(res, track, false);
      this._refreshPlayers();
      await this._videoTrackSwapped(res);
    }

    async switchDevice(deviceType, deviceId) {
      if (deviceType !== 'audio' && deviceType !== 'video') throw badParam('deviceType must be "audio" or "video"');
      if (typeof deviceId !== 'string' || !deviceId) throw badParam('deviceId must be a non-empty string');
      if (this._screen) throw illegal('a screen-sharing stream has no capture device');
      if (deviceType === 'audio') {
        var got = await this._capture(true, null, deviceId);
        if (got.audio instanceof RtcError) throw got.audio;
        var old = this._audioTrack;
        var ownedOld = this._audioOwned;
        this._cfg.microphoneId = deviceId;
        this._setAudioTrack(got.audio, true);
        if (old && ownedOld) old.stop();
        await this._audioChanged();
        return;
      }
      var main = this._highest(false);
      if (!main) throw illegal('the stream has no video');
      var v = await this._capture(false, main.profile, null, deviceId);
      if (v.video instanceof RtcError) throw v.video;
      this._cfg.cameraId = deviceId;
      var changed = [];
      var sorted = this._sorted();
      for (var i = 0; i < sorted.length; i++) {
        var r = sorted[i];
        if (r.track && r.owned) r.track.stop();
        this._setResolutionTrack(r, r === main ? v.video : await derivedTrack(v.video, r.profile), true);
        changed.push(r);
      }
      this._refreshPlayers();
      for (var j = 0; j < changed.length; j++) await this._videoTrackSwapped(changed[j]);
    }

    /** The audio source changed: swap it on the sender, or publish again when the
     * stream gains or loses its audio m-line. */
    async _audioChanged() {
      this._releaseLevel();
      this._refreshPlayers();
      if (!this._pub) return;
      if (!!this._sendAudioTrack() !== !!this._pub.audioSender) {
        this._changed();
        return;
      }
      await this._syncAudioSender();
    }

    /** A resolution got another track: swap it on its sender (no renegotiation), or
     * publish again when the resolution was not part of the publication. */
    async _videoTrackSwapped(res) {
      if (!this._pub) return;
      var sender = this._pub.videoSenders.get(res.id);
      if (!sender) {
        this._changed();
        return;
      }
      await sender.replaceTrack(res.track);
    }

    async _syncAudioSender() {
      if (this._pub && this._pub.audioSender) {
        await this._pub.audioSender.replaceTrack(this._sendAudioTrack());
      }
    }

    /** Published and the set of media changed: publish again (coalesced per tick). */
    _changed() {
      if (!this._pub || this._republishTimer) return;
      var self = this;
      this._republishTimer = setTimeout(function () {
        self._republishTimer = null;
        if (self._pub) self._pub.client._republish(self);
      }, 0);
    }

    // --- mute ---

    muteAudio() { return this._setMuted('audio', true); }

    unmuteAudio() { return this._setMuted('audio', false); }

    muteVideo() { return this._setMuted('video', true); }

    unmuteVideo() { return this._setMuted('video', false); }

    _setMuted(kind, muted) {
      if (kind === 'audio') {
        if (!this._audioTrack && !this._mixing) return false;
        this._audioMuted = muted;
      } else {
        if (!this._resolutions.some(function (r) { return r.track; })) return false;
        this._videoMuted = muted;
      }
      this._applyMuteState();
      if (this._pub) this._pub.client._sendMute(this, kind, muted);
      return true;
    }

    // --- close ---

    close(option) {
      super.close(option);
      var all = option === undefined || option === null;
      var audio = all || !!option.audio;
      var video = all || !!option.video;
      var ids = !all && option.resolutionIds ? toList(option.resolutionIds) : null;
      if (audio && this._audioTrack) {
        if (this._audioOwned) this._audioTrack.stop();
        this._audioTrack = null;
        this._releaseLevel();
        if (this._mixing) this._stopMixing(false);
      }
      if (video) {
        this._resolutions.forEach(function (r) {
          if ((!ids || ids.indexOf(r.id) >= 0) && r.track) {
            if (r.owned) r.track.stop();
            r.track = null;
          }
        });
      }
    }

    // --- audio mixing (WebAudio; only the remote end hears it) ---

    _ensureMix() {
      if (!this._mix) {
        var ctx = audioContext();
        var dest = ctx.createMediaStreamDestination();
        var micGain = ctx.createGain();
        micGain.connect(dest);
        dest.stream.getAudioTracks()[0].enabled = !this._audioMuted;
        this._mix = { ctx: ctx, dest: dest, micGain: micGain, micSource: null, micTrack: null };
      }
      this._mixConnectMic();
      return this._mix;
    }

    _mixConnectMic() {
      var m = this._mix;
      if (!m) return;
      var mic = live(this._audioTrack) ? this._audioTrack : null;
      if (m.micTrack !== mic) {
        if (m.micSource) m.micSource.disconnect();
        m.micSource = null;
        m.micTrack = mic;
        if (mic) {
          m.micSource = m.ctx.createMediaStreamSource(new MediaStream([mic]));
          m.micSource.connect(m.micGain);
        }
      }
      var silenced = (this._mixing && this._mixing.replace) || (this._boundScreen && this._boundScreen.muteMain);
      m.micGain.gain.value = silenced ? 0 : 1;
    }

    _releaseMixIfUnused() {
      if (this._mix && !this._mixing && !this._boundScreen) {
        if (this._mix.micSource) this._mix.micSource.disconnect();
        this._mix.micGain.disconnect();
        this._mix = null;
      }
    }

    async startAudioMixing(option) {
      if (!isObj(option) || typeof option.filePath !== 'string' || !option.filePath) throw badParam('option.filePath is required');
      var startTime = option.startTime === undefined ? 0 : option.startTime;
      var repeatCount = option.repeatCount === undefined ? 0 : option.repeatCount;
      if (!isNum(startTime) || startTime < 0) throw badParam('startTime must be a non-negative number (ms)');
      if (!isNum(repeatCount) || repeatCount < 0 || Math.floor(repeatCount) !== repeatCount) throw badParam('repeatCount must be a non-negative integer');
      if (option.loop && repeatCount) throw badParam('loop requires repeatCount = 0');
      if (!this._pub) throw illegal('audio mixing needs a published stream');
      if (!this._pub.audioSender) throw illegal('the published stream has no audio channel');
      if (this._mixing) this._stopMixing(false);
      var ctx = audioContext();
      var buffer;
      try {
        var resp = await fetch(option.filePath);
        if (!resp.ok) throw new Error('HTTP ' + resp.status);
        buffer = await ctx.decodeAudioData(await resp.arrayBuffer());
      } catch (e) {
        throw badParam('cannot load ' + option.filePath + ': ' + (e && e.message));
      }
      if (startTime / 1000 > buffer.duration) throw badParam('startTime is beyond the end of the file');
      var gain = ctx.createGain();
      this._mixing = {
        buffer: buffer, gain: gain, source: null, startedAt: 0, offset: startTime / 1000,
        loop: !!option.loop, remaining: repeatCount, replace: !!option.replace, playing: false
      };
      var m = this._ensureMix();
      gain.connect(m.dest);
      this._startMixSource(this._mixing.offset);
      await this._syncAudioSender();
      this._emit('audio-mixing-played');
    }

    _startMixSource(offset) {
      var mx = this._mixing;
      var ctx = this._mix.ctx;
      var src = ctx.createBufferSource();
      src.buffer = mx.buffer;
      src.loop = mx.loop;
      src.connect(mx.gain);
      var self = this;
      src.onended = function () {
        if (self._mixing !== mx || mx.source !== src) return; // paused, moved or stopped by the app
        if (mx.remaining > 0) {
          mx.remaining -= 1;
          self._startMixSource(0);
          return;
        }
        mx.playing = false;
        mx.source = null;
        self._stopMixing(true);
      };
      src.start(0, offset);
      mx.source = src;
      mx.startedAt = ctx.currentTime - offset;
      mx.playing = true;
    }

    _stopMixing(finished) {
      var mx = this._mixing;
      if (!mx) return;
      this._mixing = null;
      if (mx.source) {
        var s = mx.source;
        mx.source = null;
        try { s.stop(); } catch (e) { /* not started */ }
      }
      mx.gain.disconnect();
      this._mixConnectMic();
      this._releaseMixIfUnused();
      var self = this;
      return this._syncAudioSender()
        .catch(function (e) { log('warn', 'restoring the microphone failed:', e && e.message); })
        .then(function () { if (finished) self._emit('audio-mixing-finished'); });
    }

    async stopAudioMixing() {
      if (!this._mixing) throw illegal('no audio mixing is running');
      await this._stopMixing(false);
    }

    pauseAudioMixing() {
      var mx = this._mixing;
      if (!mx || !mx.playing) return;
      mx.offset = this._mixPosition();
      var s = mx.source;
      mx.source = null;
      mx.playing = false;
      try { s.stop(); } catch (e) { /* not started */ }
    }

    resumeAudioMixing() {
      var mx = this._mixing;
      if (!mx || mx.playing) return;
      this._startMixSource(mx.offset);
    }

    _mixPosition() {
      var mx = this._mixing;
      if (!mx) return 0;
      if (!mx.playing) return mx.offset;
      var pos = this._mix.ctx.currentTime - mx.startedAt;
      return mx.buffer.duration ? pos % mx.buffer.duration : 0;
    }

    getAudioMixingDuration() { return this._mixing ? Math.round(this._mixing.buffer.duration * 1000) : 0; }

    getAudioMixingCurrentPosition() { return Math.round(this._mixPosition() * 1000); }

    setAudioMixingVolume(level) {
      if (!isNum(level) || level < 0) throw badParam('level must be a non-negative number (100 = original volume)');
      if (this._mixing) this._mixing.gain.gain.value = level / 100;
    }

    setAudioMixingPosition(position) {
      var mx = this._mixing;
      if (!mx) throw illegal('no audio mixing is running');
      if (!isNum(position) || position < 0 || position > mx.buffer.duration * 1000) throw badParam('position must be within the file (ms)');
      if (mx.playing) {
        var s = mx.source;
        mx.source = null;
        try { s.stop(); } catch (e) { /* not started */ }
        this._startMixSource(position / 1000);
      } else {
        mx.offset = position / 1000;
      }
    }

    bindScreenAudio2RelatedStream(bindStream, muteMainStreamAudio) {
      if (!this._screen) throw illegal('only a screen-sharing stream can bind its audio');
      if (!(bindStream instanceof LocalStream) || bindStream._screen) throw badParam('bindStream must be a local camera stream');
      if (!live(this._audioTrack)) throw illegal('the screen-sharing stream has no audio (screenAudio: true and "share audio")');
      var target = bindStream;
      if (target._boundScreen) {
        target._boundScreen.source.disconnect();
        target._boundScreen.stream._boundTo = null;
      }
      var m = target._ensureMix();
      var source = m.ctx.createMediaStreamSource(new MediaStream([this._audioTrack]));
      source.connect(m.dest);
      target._boundScreen = { stream: this, source: source, muteMain: !!muteMainStreamAudio };
      target._mixConnectMic();
      this._boundTo = target;
      // The main stream now sends the mix; the screen stream stops sending audio itself.
      if (target._pub) {
        if (target._pub.audioSender) target._syncAudioSender().catch(function (e) { log('warn', 'bind failed:', e && e.message); });
        else target._changed();
      }
      if (this._pub && this._pub.audioSender) this._changed();
    }
  }

  // ------------------------------------------------------------------ RemoteStream

  function matchProfile(v) {
    for (var name in VIDEO_PROFILES) {
      var p = VIDEO_PROFILES[name];
      if (p[0] === v.width && p[1] === v.height) return namedVideoProfile(name);
    }
    return null;
  }

  class RemoteStream extends Stream {
    constructor(client, info) {
      super();
      this._client = client;
      this._audioTrack = null;
      this._videoTracks = new Map(); // resolutionId -> MediaStreamTrack
      this._assignments = [];
      this._audioEnabled = true;
      this._videoEnabled = true;
      this._update(info);
    }

    _update(info) {
      if (this._assignments && this._assignments.length) {
        // stream-updated: subscriptions to what still exists carry on, the rest is gone.
        var ids = (info.video || []).map(function (v) { return v.resolutionId; });
        var gone = this._assignments.filter(function (a) {
          return a.kind === 'audio' ? !info.audio : ids.indexOf(a.resolutionId) < 0;
        }).map(function (a) { return a.mid; });
        this._info = info;
        if (gone.length) this._dropMids(new Set(gone));
      }
      this._info = info;
      this._userId = info.userId;
      this._userName = info.userName;
      this._type = info.type;
      this._streamId = info.streamId;
      this._remoteAudioMuted = !!info.audioMuted;
      this._remoteVideoMuted = !!info.videoMuted;
    }

    getId() { return this._streamId; }

    getUserId() { return this._userId; }

    getType() { return this._type; }

    hasAudio() { return !!this._info.audio; }

    hasVideo() { return !!(this._info.video && this._info.video.length); }

    getAudioTrack() { return this._audioTrack || undefined; }

    getVideoTrack(resolutionId) {
      return this._videoTrackFor(resolutionId) || undefined;
    }

    getStreamInfo() {
      var self = this;
      return {
        videoProfiles: this._sortedVideo().map(function (v) {
          var known = matchProfile(v);
          return {
            resolutionId: v.resolutionId,
            hasTrack: self._videoTracks.has(v.resolutionId),
            width: v.width,
            height: v.height,
            frameRate: v.frameRate,
            minBitrate: known ? known.minBitrate : 0,
            maxBitrate: v.bitrate ? v.bitrate * 1000 : known ? known.maxBitrate : 0
          };
        }),
        // The publisher's audio profile as it announced it (kbit/s on the wire, bit/s here);
        // the 'standard' profile when the publisher did not say.
        audioProfile: this.hasAudio() ? (this._info.audioProfile ? {
          sampleRate: this._info.audioProfile.sampleRate,
          channelCount: this._info.audioProfile.channelCount,
          bitrate: this._info.audioProfile.bitrate * 1000
        } : {
          sampleRate: AUDIO_PROFILES.standard[0], channelCount: AUDIO_PROFILES.standard[1], bitrate: AUDIO_PROFILES.standard[2] * 1000
        }) : undefined
      };
    }

    _sortedVideo() {
      return (this._info.video || []).slice().sort(function (a, b) { return b.width * b.height - a.width * a.height; });
    }

    _resolutionIds() { return this._sortedVideo().map(function (v) { return v.resolutionId; }); }

    _highestResolutionId() {
      var ids = this._subscribedResolutionIds();
      return ids[0] || this._resolutionIds()[0];
    }

    _subscribedResolutionIds() {
      var self = this;
      return this._resolutionIds().filter(function (id) { return self._videoTracks.has(id); });
    }

    _videoTrackFor(rid) {
      if (rid) return this._videoTracks.get(rid) || null;
      var ids = this._subscribedResolutionIds();
      return ids.length ? this._videoTracks.get(ids[0]) : null;
    }

    _audioForPlay() { return this._audioTrack; }

    _defaultFit() { return this._type === 'auxiliary' ? 'contain' : 'cover'; }

    /** Map the server's slot assignments (mid -> kind/resolutionId) onto receiver tracks. */
    _assign(assignments, trackForMid) {
      var oldTracks = [this._audioTrack].concat(Array.from(this._videoTracks.values()));
      this._assignments = assignments.slice();
      this._audioTrack = null;
      this._videoTracks = new Map();
      for (var i = 0; i < assignments.length; i++) {
        var a = assignments[i];
        var track = trackForMid(a.mid);
        if (!track) {
          log('warn', 'no receiver for slot ' + a.mid);
          continue;
        }
        if (a.kind === 'audio') {
          this._audioTrack = track;
          track.enabled = this._audioEnabled;
        } else {
          this._videoTracks.set(a.resolutionId, track);
          track.enabled = this._videoEnabled;
        }
      }
      var now = [this._audioTrack].concat(Array.from(this._videoTracks.values()));
      oldTracks.forEach(function (t) { if (t && now.indexOf(t) < 0) t.enabled = true; });
      this._releaseLevel();
      this._refreshPlayers();
    }

    _dropMids(mids) {
      if (!this._assignments.some(function (a) { return mids.has(a.mid); })) return;
      var keep = this._assignments.filter(function (a) { return !mids.has(a.mid); });
      var tracks = {};
      if (this._audioTrack) tracks[this._midOf('audio')] = this._audioTrack;
      var self = this;
      this._videoTracks.forEach(function (t, rid) { tracks[self._midOf('video', rid)] = t; });
      this._assign(keep, function (mid) { return tracks[mid] || null; });
    }

    _midOf(kind, rid) {
      for (var i = 0; i < this._assignments.length; i++) {
        var a = this._assignments[i];
        if (a.kind === kind && (kind === 'audio' || a.resolutionId === rid)) return a.mid;
      }
      return null;
    }

    _detach() { this._assign([], function () { return null; }); }

    _mids() { return this._assignments.map(function (a) { return a.mid; }); }

    muteAudio() {
      this._audioEnabled = false;
      if (this._audioTrack) this._audioTrack.enabled = false;
      return true;
    }

    unmuteAudio() {
      this._audioEnabled = true;
      if (this._audioTrack) this._audioTrack.enabled = true;
      return true;
    }

    muteVideo() {
      this._videoEnabled = false;
      this._videoTracks.forEach(function (t) { t.enabled = false; });
      return true;
    }

    unmuteVideo() {
      this._videoEnabled = true;
      this._videoTracks.forEach(function (t) { t.enabled = true; });
      return true;
    }
  }

  // ------------------------------------------------------------------ Client

  var CONNECTING = 'CONNECTING';
  var CONNECTED = 'CONNECTED';
  var RECONNECTING = 'RECONNECTING';
  var DISCONNECTED = 'DISCONNECTED';

  var REQUEST_TIMEOUT_MS = 10000;
  var CONNECT_TIMEOUT_MS = 10000;
  var ICE_GATHER_TIMEOUT_MS = 5000;
  var QUALITY_INTERVAL_MS = 2000;
  // Codes that mean "the network failed", not "the server said no": keep trying to resume.
  var TRANSIENT = [90100016, 90100012, 90100009, 90100015, 90000004, 90100014, 90100008];

  var deviceWatchers = [];
  var lastDevices = null;

  function watchDevices(client) {
    var md = mediaDevices();
    if (!md || typeof md.enumerateDevices !== 'function') return;
    deviceWatchers.push(client);
    if (deviceWatchers.length > 1) return;
    md.enumerateDevices().then(function (list) { lastDevices = list; }).catch(function () { lastDevices = []; });
    var onChange = function () {
      md.enumerateDevices().then(function (list) {
        var before = lastDevices || [];
        lastDevices = list;
        var key = function (d) { return d.kind + '|' + d.deviceId; };
        var beforeKeys = before.map(key);
        var afterKeys = list.map(key);
        var changes = [];
        list.forEach(function (d) { if (beforeKeys.indexOf(key(d)) < 0) changes.push([d, 'ADD']); });
        before.forEach(function (d) { if (afterKeys.indexOf(key(d)) < 0) changes.push([d, 'REMOVE']); });
        var names = { videoinput: 'camera-changed', audioinput: 'recording-device-changed', audiooutput: 'playback-device-changed' };
        changes.forEach(function (c) {
          var event = names[c[0].kind];
          if (!event) return;
          deviceWatchers.forEach(function (cl) { cl._emit(event, { deviceId: c[0].deviceId, state: c[1] }); });
        });
      }).catch(function (e) { log('warn', 'enumerateDevices failed:', e && e.message); });
    };
    if (typeof md.addEventListener === 'function') md.addEventListener('devicechange', onChange);
    else md.ondevicechange = onChange;
  }

  class Client extends Emitter {
    constructor(config) {
      super();
      this._appId = config.appId;
      this._countryCode = config.countryCode || null;
      this._base = config.domain ? normalizeBase(config.domain) : SCRIPT_BASE;
      this._proxy = null;
      this._iceServers = [];
      this._state = DISCONNECTED;
      this._ws = null;
      this._seq = 0;
      this._pending = new Map();
      this._config = {};
      this._session = null;
      this._joinInfo = null;
      this._role = null;
      this._ended = true;
      this._joining = false;
      this._credential = null; // renewed {ctime, signature}, sent with resume
      this._topN = false;
      this._topNVolume = 100;
      this._topNMuted = false;
      this._peers = new Map();
      this._remote = new Map();
      this._published = new Map(); // 'main' | 'auxiliary' -> LocalStream
      this._subPc = null;
      this._queue = Promise.resolve();
      this._heartbeatTimer = null;
      this._qualityTimer = null;
      this._rtcStatsTimer = null;
      this._detect = null;
      this._bandwidth = null;
      this._lastRx = 0;
      this._rates = new Map();
      this._quality = null;
      this._reconnecting = false;
      this._topNPlayers = [];
      watchDevices(this);
    }

    // --- configuration (before join) ---

    setProxyServer(server) {
      var s = Array.isArray(server) ? server[0] : server;
      if (typeof s !== 'string' || !s.trim()) throw badParam('server must be a URL such as https://proxy.example.com:443');
      if (this._state !== DISCONNECTED) log('warn', 'setProxyServer() takes effect on the next join');
      this._proxy = normalizeBase(s);
    }

    setTurnServer(turnServerConfig) {
      var c = turnServerConfig;
      if (!isObj(c) || !Array.isArray(c.turnServers) || !c.turnServers.length ||
          !c.turnServers.every(function (s) { return typeof s === 'string' && s; })) {
        throw badParam('turnServerConfig.turnServers must be a non-empty list of addresses');
      }
      if (c.udpPort !== undefined && (!isNum(c.udpPort) || c.udpPort < 1 || c.udpPort > 65535)) throw badParam('udpPort must be a port number');
      var port = c.udpPort || 3478;
      var urls = c.turnServers.map(function (s) {
        return /^(turns?|stuns?):/i.test(s) ? s : 'turn:' + s + (/:\d+$/.test(s) ? '' : ':' + port) + '?transport=udp';
      });
      var server = { urls: urls };
      if (c.userName !== undefined) server.username = String(c.userName);
      if (c.credential !== undefined) server.credential = String(c.credential);
      if (this._state !== DISCONNECTED) log('warn', 'setTurnServer() takes effect for new connections');
      this._iceServers = [server];
    }

    enableTopThreeAudioMode(enable) {
      if (typeof enable !== 'boolean') return false;
      if (this._state !== DISCONNECTED) {
        log('error', 'enableTopThreeAudioMode() must be called before join()');
        return false;
      }
      this._topN = enable;
      return true;
    }

    setVolume4TopThree(volume) {
      if (!isNum(volume) || volume < 0 || volume > 100) throw badParam('volume must be a number in [0, 100]');
      this._topNVolume = volume;
      this._applyTopN();
    }

    muteAudio4TopThree(enable) {
      if (typeof enable !== 'boolean') throw badParam('enable must be a boolean');
      this._topNMuted = enable;
      this._applyTopN();
    }

    /** Top-N mode: the server forwards the loudest speakers over the first three audio
     * slots of the subscriber connection, without subscriptions; the SDK plays them. */
    _setupTopN() {
      this._removeTopN();
      if (!this._topN || !this._subPc || typeof document === 'undefined') return;
      var tracks = this._subPc.getTransceivers()
        .filter(function (t) { return t.receiver && t.receiver.track && t.receiver.track.kind === 'audio'; })
        .slice(0, 3)
        .map(function (t) { return t.receiver.track; });
      var self = this;
      this._topNPlayers = tracks.map(function (track) {
        var el = document.createElement('audio');
        el.autoplay = true;
        el.style.display = 'none';
        el.className = 'hrtc-topn-audio';
        el.srcObject = new MediaStream([track]);
        (document.body || document.documentElement).appendChild(el);
        el.play().catch(function (e) {
          if (e && e.name === 'NotAllowedError') {
            self._emit('Error', { errorCode: String(RtcErrorCode.RTC_ERR_CODE_PLAY_NOT_ALLOWED), errorMsg: ERROR_MESSAGES[90100021] });
          }
        });
        return el;
      });
      this._applyTopN();
    }

    _applyTopN() {
      var volume = this._topNVolume / 100;
      var muted = this._topNMuted;
      (this._topNPlayers || []).forEach(function (el) {
        el.volume = volume;
        el.muted = muted;
      });
    }

    _removeTopN() {
      (this._topNPlayers || []).forEach(function (el) {
        el.srcObject = null;
        if (el.parentNode) el.parentNode.removeChild(el);
      });
      this._topNPlayers = [];
    }

    /** The server does not know this request type (an older Kindling): fall back. */
    _unsupported(e) {
      var err = asRtcError(e);
      return err.getCode() === RtcErrorCode.RTC_ERR_CODE_INVALID_CTRL_PARAMETER && /unknown request type/i.test(err.detail || '');
    }

    setNetworkBandwidth(bandwidthParam) {
      if (!isObj(bandwidthParam) || !isNum(bandwidthParam.maxBandwidth) ||
          bandwidthParam.maxBandwidth < 3072 || bandwidthParam.maxBandwidth > 51200) {
        throw badParam('maxBandwidth must be a number in [3072, 51200] kbit/s');
      }
      this._bandwidth = bandwidthParam.maxBandwidth;
      this._applyBandwidth();
      this._sendBandwidth();
    }

    /** The downlink half of the cap is the server's (when it supports it). */
    _sendBandwidth() {
      if (!this._bandwidth || !this._session || this._state !== CONNECTED) return;
      var self = this;
      this._request('setNetworkBandwidth', { maxBandwidth: Math.round(this._bandwidth) }).catch(function (e) {
        if (self._unsupported(e)) log('debug', 'the server does not cap the downlink; the uplink cap applies');
        else log('warn', 'setNetworkBandwidth failed:', e && e.message);
      });
    }

    /** Share the total cap between all senders in proportion to their profiles' maxima. */
    _applyBandwidth() {
      var senders = [];
      this._published.forEach(function (stream) {
        var pub = stream._pub;
        if (!pub) return;
        if (pub.audioSender) senders.push([pub.audioSender, stream._audioProfile.bitrate, null]);
        // Several resolutions: each layer is a resolution subscribers choose, so the encoder
        // keeps it (and gives up frame rate) instead of scaling it down to another layer's size.
        var layered = pub.videoSenders.size > 1 || stream._screen;
        pub.videoSenders.forEach(function (sender, rid) {
          var res = stream._resolution(rid);
          if (res) senders.push([sender, res.profile.maxBitrate, layered ? 'maintain-resolution' : 'balanced']);
        });
      });
      var total = senders.reduce(function (n, s) { return n + s[1]; }, 0);
      var factor = this._bandwidth && total ? Math.min(1, (this._bandwidth * 1000) / total) : 1;
      senders.forEach(function (s) {
        try {
          var params = s[0].getParameters();
          if (!params.encodings || !params.encodings.length) params.encodings = [{}];
          params.encodings[0].maxBitrate = Math.max(8000, Math.floor(s[1] * factor));
          if (s[2]) params.degradationPreference = s[2];
          s[0].setParameters(params).catch(function (e) { log('warn', 'setParameters failed:', e && e.message); });
        } catch (e) {
          log('warn', 'setParameters failed:', e && e.message);
        }
      });
    }

    // --- state ---

    getConnectionState() { return this._state; }

    _setState(state) {
      if (state === this._state) return;
      var prev = this._state;
      this._state = state;
      this._emit('connection-state-changed', { prevState: prev, curState: state });
    }

    _serverBase() {
      var base = this._proxy || this._base;
      if (!base) throw badParam('no server: pass createClient({domain}) or load hrtc.js from the Kindling server');
      return base;
    }

    // --- signalling socket ---

    _openSocket() {
      var self = this;
      var url = signallingUrl(this._serverBase());
      if (typeof WebSocket === 'undefined') return Promise.reject(rtcError(RtcErrorCode.RTC_ERR_CODE_WS_NOT_SUPPORTED));
      return new Promise(function (resolve, reject) {
        var ws;
        try {
          ws = new WebSocket(url);
        } catch (e) {
          reject(rtcError(RtcErrorCode.RTC_ERR_CODE_WEBSOCKET_CONNECT_ERROR, e && e.message));
          return;
        }
        var opened = false;
        var configured = false;
        var timer = setTimeout(function () {
          if (configured) return;
          configured = true; // settled
          try { ws.close(); } catch (e) { /* closing */ }
          reject(rtcError(opened ? RtcErrorCode.RTC_ERR_CODE_WAIT_CONFIG_FAIL : RtcErrorCode.RTC_ERR_CODE_WEBSOCKET_CONNECT_TIMEOUT));
        }, CONNECT_TIMEOUT_MS);
        ws.onopen = function () { opened = true; };
        ws.onmessage = function (ev) {
          var msg;
          try {
            msg = JSON.parse(ev.data);
          } catch (e) {
            log('warn', 'unreadable signalling frame');
            return;
          }
          self._lastRx = Date.now();
          if (!configured) {
            if (msg.type === 'event' && msg.event === 'config') {
              configured = true;
              clearTimeout(timer);
              self._config = msg.data || {};
              self._ws = ws;
              resolve(ws);
            }
            return;
          }
          if (ws === self._ws) self._onMessage(msg);
        };
        ws.onerror = function () { log('debug', 'signalling socket error'); };
        ws.onclose = function (ev) {
          if (!configured) {
            configured = true;
            clearTimeout(timer);
            reject(rtcError(opened ? RtcErrorCode.RTC_ERR_CODE_WAIT_CONFIG_FAIL : RtcErrorCode.RTC_ERR_CODE_WEBSOCKET_CONNECT_ERROR,
              'close code ' + ev.code));
            return;
          }
          if (ws === self._ws) self._onSocketClosed();
        };
      });
    }

    _request(type, data, timeoutMs) {
      var ws = this._ws;
      if (!ws || ws.readyState !== 1) {
        return Promise.reject(rtcError(ws ? RtcErrorCode.RTC_ERR_CODE_WEBSOCKET_NOT_OPEN : RtcErrorCode.RTC_ERR_CODE_WEBSOCKET_NOT_CONNECTED, type));
      }
      var id = ++this._seq;
      var self = this;
      return new Promise(function (resolve, reject) {
        var timer = setTimeout(function () {
          self._pending.delete(id);
          reject(rtcError(RtcErrorCode.RTC_ERR_CODE_WAIT_RSP_TIMEOUT, type));
        }, timeoutMs || REQUEST_TIMEOUT_MS);
        self._pending.set(id, { resolve: resolve, reject: reject, timer: timer, type: type });
        try {
          ws.send(JSON.stringify({ id: id, type: type, data: data || {} }));
        } catch (e) {
          clearTimeout(timer);
          self._pending.delete(id);
          reject(rtcError(RtcErrorCode.RTC_ERR_CODE_WEBSOCKET_NOT_OPEN, e && e.message));
        }
      });
    }

    _onMessage(msg) {
      if (msg.type === 'response') {
        var p = this._pending.get(msg.id);
        if (p) {
          this._pending.delete(msg.id);
          clearTimeout(p.timer);
          if (msg.ok) {
            p.resolve(msg.data || {});
          } else {
            var e = msg.error || {};
            p.reject(new RtcError(e.code || RtcErrorCode.RTC_ERR_CODE_RTC_SDK_ERROR, e.message, e.detail, e.serverCode));
          }
        } else if (msg.id === null && !msg.ok) {
          var err = msg.error || {};
          this._emit('Error', { errorCode: String(err.code), errorMsg: err.message || '' });
        }
        return;
      }
      if (msg.type === 'event') {
        try {
          this._onEvent(msg.event, msg.data || {});
        } catch (e) {
          log('error', 'handling event ' + msg.event + ' failed:', e);
        }
      }
    }

    _failPending(code) {
      var pending = Array.from(this._pending.values());
      this._pending.clear();
      pending.forEach(function (p) {
        clearTimeout(p.timer);
        p.reject(rtcError(code, p.type));
      });
    }

    /** Forget the socket at once (no waiting for a closing handshake on a dead network). */
    _dropSocket() {
      var ws = this._ws;
      if (!ws) return;
      ws.onclose = null;
      ws.onmessage = null;
      try { ws.close(); } catch (e) { /* closing */ }
      this._onSocketClosed();
    }

    _onSocketClosed() {
      this._ws = null;
      this._stopHeartbeat();
      this._failPending(RtcErrorCode.RTC_ERR_CODE_WEBSOCKET_INTERRUPTED);
      if (this._ended || !this._session) {
        if (this._state !== DISCONNECTED) {
          this._teardown();
          this._setState(DISCONNECTED);
        }
        return;
      }
      if (!this._reconnecting) this._reconnect();
    }

    async _reconnect() {
      this._reconnecting = true;
      this._setState(RECONNECTING);
      var keepalive = Number(this._session.keepalive || this._config.keepalive || 60);
      var deadline = Date.now() + keepalive * 1000;
      var delay = 200;
      try {
        while (!this._ended && Date.now() < deadline) {
          try {
            await this._openSocket();
            if (this._ended || !this._session) {
              this._dropSocketQuietly(); // left (or was banned) while the socket was opening
              return;
            }
            var data = { resumeToken: this._session.resumeToken };
            if (this._credential) {
              data.ctime = this._credential.ctime;
              data.signature = this._credential.signature;
            }
            var s = await this._request('resume', data);
            this._session = Object.assign({}, this._session, s);
            this._startHeartbeat();
            this._setState(CONNECTED);
            log('info', 'signalling resumed');
            return;
          } catch (e) {
            var err = asRtcError(e);
            if (TRANSIENT.indexOf(err.getCode()) < 0) {
              this._giveUp(err);
              return;
            }
            if (this._ws) this._dropSocketQuietly();
          }
          await sleep(delay);
          delay = Math.min(delay * 2, 2000);
        }
        if (!this._ended) this._giveUp(rtcError(RtcErrorCode.RTC_ERR_CODE_WEBSOCKET_RECONNECT_TIMEOUT));
      } finally {
        this._reconnecting = false;
      }
    }

    _dropSocketQuietly() {
      var ws = this._ws;
      this._ws = null;
      if (ws) {
        ws.onclose = null;
        ws.onmessage = null;
        try { ws.close(); } catch (e) { /* closing */ }
      }
    }

    _giveUp(err) {
      this._ended = true;
      this._session = null;
      this._dropSocketQuietly();
      this._teardown();
      this._setState(DISCONNECTED);
      this._emit('Error', { errorCode: String(err.getCode()), errorMsg: err.getMsg() });
    }

    _startHeartbeat() {
      this._stopHeartbeat();
      var self = this;
      var interval = Math.max(0.2, Number(this._config.heartbeatInterval || 5)) * 1000;
      var silentLimit = Math.max(1, Number(this._config.disconnectAfter || 15)) * 1000;
      this._lastRx = Date.now();
      this._heartbeatTimer = setInterval(function () {
        if (!self._ws) return;
        if (Date.now() - self._lastRx > silentLimit) {
          log('warn', 'signalling silent for ' + silentLimit + ' ms: reconnecting');
          self._dropSocket();
          return;
        }
        if (self._state === CONNECTED) self._request('heartbeat', {}, silentLimit).catch(function () { /* the silence check decides */ });
      }, interval);
    }

    _stopHeartbeat() {
      if (this._heartbeatTimer) clearInterval(this._heartbeatTimer);
      this._heartbeatTimer = null;
    }

    // --- room ---

    async join(roomId, options) {
      if (typeof roomId !== 'string' || !ID_RE.test(roomId)) throw badParam('roomId: 1-64 letters, digits, "-" or "_"');
      if (!isObj(options)) throw badParam('options is required');
      var o = options;
      if (typeof o.userId !== 'string' || !ID_RE.test(o.userId)) throw badParam('userId: 1-64 letters, digits, "-" or "_"');
      if (o.userName !== undefined && o.userName !== null && (typeof o.userName !== 'string' || o.userName.length > 256)) {
        throw badParam('userName: a string of at most 256 characters');
      }
      if (typeof o.signature !== 'string' || !o.signature || o.signature.length > 512) throw badParam('signature: a string of at most 512 characters');
      if (typeof o.ctime !== 'string' || !/^\d{1,12}$/.test(o.ctime)) throw badParam('ctime: a string of UNIX seconds');
      if (typeof o.role !== 'number' || (o.role !== 0 && o.role !== 2)) throw badParam('role: the number 0 (joiner) or 2 (player)');
      if (this._session) throw rtcError(RtcErrorCode.RTC_ERR_CODE_ALREADY_JOINED);
      if (this._joining || this._state !== DISCONNECTED) throw illegal('join() is already in progress');
      this._joining = true;
      this._ended = false;
      this._credential = null;
      try {
        this._setState(CONNECTING);
        try {
          await this._openSocket();
        } catch (e) {
          this._ended = true;
          this._setState(DISCONNECTED);
          throw asRtcError(e);
        }
        this._startHeartbeat();
        this._setState(CONNECTED);
        var data = {
          appId: this._appId,
          roomId: roomId,
          userId: o.userId,
          role: o.role,
          ctime: o.ctime,
          signature: o.signature,
          options: { topN: this._topN }
        };
        if (typeof o.userName === 'string') data.userName = o.userName;
        var session;
        try {
          session = await this._request('join', data);
        } catch (e) {
          this._ended = true;
          this._dropSocketQuietly();
          this._stopHeartbeat();
          this._setState(DISCONNECTED);
          throw asRtcError(e);
        }
        this._session = session;
        this._role = o.role;
        this._joinInfo = { roomId: roomId, userId: o.userId, userName: session.userName || o.userName || '' };
        this._startQuality();
        this._sendBandwidth();
        if (this._topN) {
          var self = this;
          await this._serial(function () { return self._connectTopN(); });
        }
      } finally {
        this._joining = false;
      }
    }

    async leave() {
      if (!this._session && this._state === DISCONNECTED) throw illegal('not in a room');
      this._ended = true;
      try {
        if (this._ws && this._state === CONNECTED) await this._request('leave', {}, 5000);
      } catch (e) {
        log('warn', 'leave request failed:', e && e.message);
      } finally {
        this._session = null;
        this._dropSocketQuietly();
        this._stopHeartbeat();
        this._teardown();
        this._setState(DISCONNECTED);
      }
    }

    /** Everything media and timers of a session that ended (leave, kick, give-up). */
    _teardown() {
      this._stopQuality();
      if (this._rtcStatsTimer) clearInterval(this._rtcStatsTimer);
      this._rtcStatsTimer = null;
      if (this._detect) clearInterval(this._detect.timer);
      this._detect = null;
      var self = this;
      this._published.forEach(function (stream) {
        self._closePub(stream);
        stream.close(); // "the camera is disabled automatically after leaving"
      });
      this._published.clear();
      if (this._subPc) {
        try { this._subPc.close(); } catch (e) { /* closed */ }
      }
      this._subPc = null;
      this._removeTopN();
      this._remote.forEach(function (s) { s._detach(); });
      this._remote.clear();
      this._peers.clear();
      this._rates.clear();
      this._quality = null;
    }

    async switchRole(role, authorization) {
      if (role !== 0 && role !== 2) throw badParam('role: the number 0 (joiner) or 2 (player)');
      if (!isObj(authorization) || typeof authorization.signature !== 'string' || !authorization.signature ||
          authorization.signature.length > 512 || typeof authorization.ctime !== 'string' || !/^\d{1,12}$/.test(authorization.ctime)) {
        throw badParam('authorization: {signature, ctime} strings');
      }
      this._requireJoined();
      var self = this;
      return this._serial(async function () {
        await self._request('switchRole', { role: role, ctime: authorization.ctime, signature: authorization.signature });
        self._role = role;
        self._credential = { ctime: authorization.ctime, signature: authorization.signature };
        if (role === 2) {
          // The server unpublished this user's streams (players only receive).
          self._published.forEach(function (stream) { self._closePub(stream); });
          self._published.clear();
        }
      });
    }

    async changeUserName(userName) {
      if (typeof userName !== 'string' || userName.length > 256) throw badParam('userName: a string of at most 256 characters');
      this._requireJoined();
      try {
        var r = await this._request('changeUserName', { userName: userName });
        this._joinInfo.userName = r.userName !== undefined ? r.userName : userName;
        return true;
      } catch (e) {
        log('error', 'changeUserName failed:', e && e.message);
        return false;
      }
    }

    renewSignature(ctime, signature) {
      if (typeof ctime !== 'string' || !/^\d{1,12}$/.test(ctime) || typeof signature !== 'string' || !signature || signature.length > 512) {
        log('error', 'renewSignature(ctime: string, signature: string): invalid parameters');
        return false;
      }
      if (!this._session) {
        log('error', 'renewSignature() needs a joined client');
        return false;
      }
      this._credential = { ctime: ctime, signature: signature };
      var self = this;
      if (this._state === CONNECTED) {
        this._request('renewSignature', { ctime: ctime, signature: signature }).catch(function (e) {
          var err = asRtcError(e);
          if (err.getCode() === 90100030 || err.getCode() === 90100031) {
            self._emit('signature-expired', { errorCode: String(err.getCode()), errorMsg: ERROR_MESSAGES[err.getCode()] });
          } else {
            log('warn', 'renewSignature failed (sent again with the next resume):', err.getMsg());
          }
        });
      }
      return true;
    }

    _requireJoined() {
      if (!this._session) throw illegal('join a room first');
      if (this._state !== CONNECTED) throw rtcError(RtcErrorCode.RTC_ERR_CODE_WEBSOCKET_NOT_CONNECTED);
    }

    /** Media operations run one at a time: slots and renegotiations must not interleave. */
    _serial(fn) {
      var run = this._queue.then(function () { return fn(); });
      this._queue = run.catch(function () { /* next one runs anyway */ });
      return run;
    }

    // --- events from the server ---

    _onEvent(name, d) {
      var s;
      var key;
      switch (name) {
        case 'config':
          this._config = d;
          return;
        case 'peer-join':
          this._peers.set(d.userId, d.userName);
          this._emit('peer-join', { userId: d.userId, userName: d.userName });
          return;
        case 'peer-leave':
          this._peers.delete(d.userId);
          this._remote.forEach(function (rs, k, map) {
            if (rs.getUserId() === d.userId) {
              rs._detach();
              map.delete(k);
            }
          });
          this._emit('peer-leave', { userId: d.userId, userName: d.userName, reason: d.reason });
          return;
        case 'stream-added':
        case 'stream-updated':
          key = streamKey(d.userId, d.type);
          s = this._remote.get(key);
          if (s && s.getId() === d.streamId) {
            s._update(d);
          } else {
            if (s) s._detach();
            s = new RemoteStream(this, d);
            this._remote.set(key, s);
          }
          this._emit(name, { stream: s });
          return;
        case 'stream-removed':
          key = streamKey(d.userId, d.type);
          s = this._remote.get(key);
          if (s && s.getId() === d.streamId) {
            this._remote.delete(key);
          } else {
            s = new RemoteStream(this, d);
          }
          s._detach();
          this._emit('stream-removed', { stream: s });
          return;
        case 'mute-audio':
        case 'unmute-audio':
        case 'mute-video':
        case 'unmute-video':
          this._remote.forEach(function (rs) {
            if (rs.getUserId() !== d.userId) return;
            if (name.indexOf('audio') >= 0) rs._remoteAudioMuted = name === 'mute-audio';
            else rs._remoteVideoMuted = name === 'mute-video';
          });
          this._emit(name, d);
          return;
        case 'client-banned':
          this._ended = true;
          this._session = null;
          this._emit('client-banned', { userId: d.userId, reason: d.reason });
          return; // the server closes the socket next: teardown and DISCONNECTED follow
        case 'remote-user-name-changed':
          this._peers.set(d.userId, d.userName);
          this._remote.forEach(function (rs) { if (rs.getUserId() === d.userId) rs._userName = d.userName; });
          this._emit(name, d);
          return;
        case 'media-reset':
          this._onMediaReset(d);
          return;
        case 'volume-indicator':
          this._emit(name, Array.isArray(d) ? d : (d.users || d.volumes || []));
          return;
        case 'layer-demand':
          this._onLayerDemand(d);
          return;
        default:
          this._emit(name, d);
      }
    }

    /** The server says which resolutions of a published stream someone watches
     *  (autoPushVideo=false, room-rules OQ-14): stop encoding the others. */
    _onLayerDemand(d) {
      var wanted = Array.isArray(d.resolutionIds) ? d.resolutionIds : [];
      this._published.forEach(function (stream, type) {
        var pub = stream._pub;
        // A single resolution keeps sending: pausing it only trades the first frame's
        // latency (and the encoder's ramp-up) for a little idle bandwidth.
        if (!pub || type !== d.type || pub.videoSenders.size < 2 || stream._autoPushVideo) return;
        pub.videoSenders.forEach(function (sender, rid) {
          var on = wanted.indexOf(rid) >= 0;
          try {
            var params = sender.getParameters();
            if (!params.encodings || !params.encodings.length) return;
            if (params.encodings[0].active === on) return;
            params.encodings[0].active = on;
            sender.setParameters(params).catch(function (e) { log('warn', 'setParameters failed:', e && e.message); });
          } catch (e) {
            log('warn', 'layer demand not applied:', e && e.message);
          }
        });
      });
    }

    _onMediaReset(d) {
      log('warn', 'media reset by the server:', d && d.reason && d.reason.msg);
      var self = this;
      this._serial(async function () {
        if (self._subPc) {
          try { self._subPc.close(); } catch (e) { /* closed */ }
        }
        self._subPc = null;
        self._remote.forEach(function (rs) { rs._detach(); });
        var streams = Array.from(self._published.values());
        streams.forEach(function (stream) { self._closePub(stream); });
        self._published.clear();
        if (self._topN) await self._connectTopN();
        for (var i = 0; i < streams.length; i++) {
          try {
            await self._publishNow(streams[i]);
          } catch (e) {
            var err = asRtcError(e);
            self._emit('Error', { errorCode: String(err.getCode()), errorMsg: err.getMsg() });
          }
        }
      });
    }

    // --- peer connections ---

    _newPc() {
      return new RTCPeerConnection({ iceServers: this._iceServers, bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    }

    // --- publish ---

    async publish(stream, option) {
      if (!(stream instanceof LocalStream)) throw badParam('stream must be a local stream from HRTC.createStream()');
      if (option !== undefined && option !== null) {
        if (!isObj(option) || (option.autoPushVideo !== undefined && typeof option.autoPushVideo !== 'boolean')) {
          throw badParam('option: {autoPushVideo?: boolean}');
        }
      }
      this._requireJoined();
      if (this._role !== 0) throw rtcError(RtcErrorCode.RTC_ERR_CODE_ROLE_NO_PERMISSION, 'players cannot publish');
      if (!stream._hasSendableMedia()) throw illegal('initialize the stream first: it has no media');
      // autoPushVideo (default false): false lets the server pause resolutions nobody
      // watches (layer-demand); true keeps every resolution sending.
      stream._autoPushVideo = !!(option && option.autoPushVideo);
      var self = this;
      return this._serial(function () { return self._publishNow(stream); });
    }

    /** Offer the stream's tracks on a new publisher connection. With `replace` the
     * stream is published again in place (the server sends stream-updated and keeps
     * the subscriptions), and the previous connection is closed once the new one works. */
    async _publishNow(stream, replace) {
      var type = stream._pubType();
      if (!replace) {
        if (stream._pub) throw rtcError(RtcErrorCode.RTC_ERR_CODE_STREAM_ALREADY_PUSHED, 'the stream is published');
        if (this._published.has(type)) throw rtcError(RtcErrorCode.RTC_ERR_CODE_STREAM_ALREADY_PUSHED, 'a ' + type + ' stream is published');
      }
      var audioTrack = stream._sendAudioTrack();
      var resolutions = stream._publishedResolutions();
      if (!audioTrack && !resolutions.length) throw illegal('the stream has no media');
      var pc = this._newPc();
      var msid = new MediaStream();
      var reorder = false;
      var audioTx = null;
      var video = [];
      try {
        if (audioTrack) {
          audioTx = pc.addTransceiver(audioTrack, {
            direction: 'sendonly', streams: [msid], sendEncodings: [{ maxBitrate: stream._audioProfile.bitrate }]
          });
          if (!preferCodec(audioTx, 'audio', ['audio/opus'])) reorder = true;
        }
        resolutions.forEach(function (r) {
          var tx = pc.addTransceiver(r.track, {
            direction: 'sendonly', streams: [msid],
            sendEncodings: [{ maxBitrate: r.profile.maxBitrate, maxFramerate: r.profile.frameRate }]
          });
          // VP8 first; H.264 as well, for servers deployed with KINDLING_VIDEO_CODEC=h264.
          if (!preferCodec(tx, 'video', ['video/vp8', 'video/h264'])) reorder = true;
          video.push([r, tx]);
        });
        var offer = await pc.createOffer();
        if (reorder) {
          offer = { type: 'offer', sdp: reorderCodecs(reorderCodecs(offer.sdp, 'video', 'VP8'), 'audio', 'opus') };
        }
        await pc.setLocalDescription(offer);
        await waitIceGathering(pc, ICE_GATHER_TIMEOUT_MS);
      } catch (e) {
        pc.close();
        throw asRtcError(e);
      }
      var req = {
        type: type,
        audio: !!audioTx,
        video: video.map(function (v) {
          var p = v[0].profile;
          return {
            resolutionId: v[0].id,
            width: Math.max(1, Math.min(4096, Math.round(p.width))),
            height: Math.max(1, Math.min(4096, Math.round(p.height))),
            frameRate: Math.max(1, Math.min(120, Math.round(p.frameRate))),
            bitrate: Math.max(1, Math.min(51200, Math.round(p.maxBitrate / 1000))),
            mid: v[1].mid
          };
        }),
        sdp: pc.localDescription.sdp
      };
      if (audioTx) {
        req.audioMid = audioTx.mid;
        var ap = stream._audioProfile;
        if (ap) {
          req.audioProfile = {
            sampleRate: Math.max(8000, Math.min(48000, Math.round(ap.sampleRate))),
            channelCount: ap.channelCount === 2 ? 2 : 1,
            bitrate: Math.max(6, Math.min(510, Math.round(ap.bitrate / 1000)))
          };
        }
      }
      if (replace) req.replace = true;
      var result;
      try {
        result = await this._request('publish', req);
      } catch (e) {
        pc.close();
        throw asRtcError(e);
      }
      try {
        await pc.setRemoteDescription({ type: 'answer', sdp: result.sdp });
      } catch (e) {
        pc.close();
        this._request('unpublish', { type: type }).catch(function () { /* best effort */ });
        if (replace) {
          this._closePub(stream);
          this._published.delete(type);
        }
        throw rtcError(RtcErrorCode.RTC_ERR_CODE_ANSWER_SDP_INVALID, e && e.message);
      }
      if (replace && stream._pub) {
        var old = stream._pub;
        stream._pub = null;
        try { old.pc.close(); } catch (e) { /* closed */ }
      }
      var videoSenders = new Map();
      video.forEach(function (v) { videoSenders.set(v[0].id, v[1].sender); });
      stream._streamId = result.streamId;
      stream._pub = {
        client: this, type: type, pc: pc, createdAt: Date.now(),
        audioSender: audioTx ? audioTx.sender : null, videoSenders: videoSenders
      };
      this._published.set(type, stream);
      pc.addEventListener('connectionstatechange', function () { log('debug', type + ' publisher: ' + pc.connectionState); });
      this._applyBandwidth();
      if (stream._audioMuted && audioTx) this._sendMute(stream, 'audio', true);
      if (stream._videoMuted && video.length) this._sendMute(stream, 'video', true);
    }

    _closePub(stream) {
      var pub = stream._pub;
      if (!pub) return;
      stream._pub = null;
      stream._streamId = null;
      try { pub.pc.close(); } catch (e) { /* closed */ }
      if (stream._republishTimer) {
        clearTimeout(stream._republishTimer);
        stream._republishTimer = null;
      }
    }

    async unpublish(stream) {
      if (!(stream instanceof LocalStream)) throw badParam('stream must be a local stream');
      this._requireJoined();
      var self = this;
      return this._serial(async function () {
        if (!stream._pub || stream._pub.client !== self) throw illegal('the stream is not published');
        var type = stream._pub.type;
        try {
          await self._request('unpublish', { type: type });
        } finally {
          self._closePub(stream);
          self._published.delete(type);
        }
      });
    }

    /** The stream's set of tracks changed while published: publish it again. */
    _republish(stream) {
      var self = this;
      return this._serial(async function () {
        if (!stream._pub || stream._pub.client !== self) return;
        var type = stream._pub.type;
        if (stream._hasSendableMedia()) {
          try {
            await self._publishNow(stream, true); // peers get stream-updated and keep their subscriptions
            return;
          } catch (e) {
            var err = asRtcError(e);
            if (!(err.getCode() === RtcErrorCode.RTC_ERR_CODE_INVALID_CTRL_PARAMETER && /unknown field.*replace/i.test(err.detail || ''))) {
              throw err;
            }
            log('info', 'this server cannot republish in place: unpublish and publish again');
          }
        }
        try {
          await self._request('unpublish', { type: type });
        } catch (e) {
          if (asRtcError(e).getCode() !== RtcErrorCode.RTC_ERR_CODE_INVALID_OPERATION) throw e;
        }
        self._closePub(stream);
        self._published.delete(type);
        if (stream._hasSendableMedia()) await self._publishNow(stream);
      }).catch(function (e) {
        var err = asRtcError(e);
        log('error', 'publishing the changed stream failed:', err.toString());
        self._emit('Error', { errorCode: String(err.getCode()), errorMsg: err.getMsg() });
      });
    }

    _sendMute(stream, kind, muted) {
      if (!stream._pub || this._state !== CONNECTED) return;
      this._request('mute', { type: stream._pub.type, kind: kind, muted: muted }).catch(function (e) {
        log('warn', 'mute request failed:', e && e.message);
      });
    }

    // --- subscribe ---

    _checkRemote(stream) {
      if (!(stream instanceof RemoteStream) || stream._client !== this) throw badParam('stream must be a RemoteStream of this client');
    }

    _subscribeData(stream, option, forUnsubscribe) {
      var data = { userId: stream.getUserId(), type: stream.getType() };
      if (option === undefined || option === null) return data;
      if (!isObj(option)) throw badParam('option must be an object');
      var audio = !!option.audio;
      var video = !!option.video;
      if (!audio && !video && !forUnsubscribe) throw badParam('video and audio cannot both be false');
      data.audio = audio;
      data.video = video;
      if (video && option.resolutionIds !== undefined && option.resolutionIds !== null) {
        var ids = toList(option.resolutionIds);
        if (!ids.every(function (x) { return typeof x === 'string' && x; }) || ids.length > 4) {
          throw badParam('resolutionIds must be a list of resolution IDs');
        }
        data.resolutionIds = ids;
      }
      return data;
    }

    async subscribe(stream, option) {
      this._checkRemote(stream);
      var data = this._subscribeData(stream, option, false);
      this._requireJoined();
      var self = this;
      return this._serial(async function () {
        var res = await self._request('subscribe', data);
        await self._wire(stream, res);
        self._emit('stream-subscribed', { stream: stream });
      });
    }

    async unsubscribe(stream, option) {
      this._checkRemote(stream);
      var data = this._subscribeData(stream, option, true);
      this._requireJoined();
      var self = this;
      return this._serial(async function () {
        var res = await self._request('unsubscribe', data);
        await self._wire(stream, res);
      });
    }

    async batchSubscribe(subscribeInfos) {
      if (!Array.isArray(subscribeInfos)) throw badParam('subscribeInfos must be a list');
      var levels = ['FHD', 'HD', 'SD', 'LD'];
      subscribeInfos.forEach(function (info) {
        if (!isObj(info) || typeof info.userId !== 'string' || !info.userId) throw badParam('each SubscribeParam needs a userId');
        if (info.resolutionIds !== undefined && (!Array.isArray(info.resolutionIds) ||
            !info.resolutionIds.every(function (x) { return typeof x === 'string' && x; }))) {
          throw badParam('resolutionIds must be a list of strings');
        }
        if (info.minResolution !== undefined && levels.indexOf(info.minResolution) < 0) {
          throw badParam('minResolution must be FHD, HD, SD or LD');
        }
      });
      this._requireJoined();
      var self = this;
      return this._serial(async function () {
        var res;
        try {
          res = await self._request('batchSubscribe', {
            subscribeInfos: subscribeInfos.map(function (i) {
              var x = { userId: i.userId };
              if (i.resolutionIds && i.resolutionIds.length) x.resolutionIds = i.resolutionIds.slice();
              if (i.minResolution) x.minResolution = i.minResolution;
              return x;
            })
          });
        } catch (e) {
          if (!self._unsupported(e)) throw e;
          return self._batchSubscribeByDiff(subscribeInfos);
        }
        if (res.offer) await self._acceptSubscriberOffer(res.offer);
        var listed = [];
        var results = res.results || [];
        for (var i = 0; i < results.length; i++) {
          var info = results[i].stream || {};
          var st = self._remote.get(streamKey(info.userId, info.type));
          if (!st) continue;
          await self._wire(st, results[i]);
          listed.push(st);
        }
        // Main streams left out of the list lost their video; their audio is untouched.
        self._remote.forEach(function (st) {
          if (st.getType() !== 'main' || listed.indexOf(st) >= 0) return;
          var keep = st._assignments.filter(function (a) { return a.kind === 'audio'; });
          if (keep.length !== st._assignments.length) st._assign(keep, function (mid) { return self._trackForMid(mid); });
        });
        listed.forEach(function (st) { self._emit('stream-subscribed', { stream: st }); });
      });
    }

    /** batchSubscribe on a server without it: subscribe/unsubscribe the difference. */
    async _batchSubscribeByDiff(subscribeInfos) {
      var self = this;
      // Video only, full replacement: the difference between what is subscribed and what is asked.
      var wanted = new Map();
      subscribeInfos.forEach(function (info) {
        var s = self._remote.get(streamKey(info.userId, 'main'));
        if (!s || !s.hasVideo()) {
          throw rtcError(RtcErrorCode.RTC_ERR_CODE_INVALID_SUBSCRIBED_INFO, 'no camera video of ' + info.userId);
        }
        var ids = info.resolutionIds && info.resolutionIds.length ? info.resolutionIds.slice() : [s._resolutionIds()[0]];
        var prev = wanted.get(s) || [];
        wanted.set(s, prev.concat(ids.filter(function (x) { return prev.indexOf(x) < 0; })));
      });
      var streams = Array.from(self._remote.values()).filter(function (s) { return s.getType() === 'main'; });
      for (var i = 0; i < streams.length; i++) {
        var s = streams[i];
        var cur = s._subscribedResolutionIds();
        var want = wanted.get(s) || [];
        var drop = cur.filter(function (x) { return want.indexOf(x) < 0; });
        if (!drop.length) continue;
        var data = { userId: s.getUserId(), type: 'main', video: true };
        if (want.length) data.resolutionIds = drop;
        await self._wire(s, await self._request('unsubscribe', data));
      }
      var added = [];
      var entries = Array.from(wanted.entries());
      for (var j = 0; j < entries.length; j++) {
        var st = entries[j][0];
        var current = st._subscribedResolutionIds();
        var add = entries[j][1].filter(function (x) { return current.indexOf(x) < 0; });
        if (!add.length) continue;
        await self._wire(st, await self._request('subscribe', { userId: st.getUserId(), type: 'main', video: true, resolutionIds: add }));
        added.push(st);
      }
      added.forEach(function (st) { self._emit('stream-subscribed', { stream: st }); });
    }

    async _wire(stream, res) {
      if (res.offer) await this._acceptSubscriberOffer(res.offer);
      if (res.stream && res.stream.streamId === stream.getId()) stream._update(res.stream);
      var assignments = res.assignments || [];
      var mids = new Set(assignments.map(function (a) { return a.mid; }));
      this._remote.forEach(function (other) { if (other !== stream) other._dropMids(mids); });
      var self = this;
      stream._assign(assignments, function (mid) { return self._trackForMid(mid); });
    }

    async _connectTopN() {
      try {
        var r = await this._request('subscriberConnect', {});
        if (r.offer) await this._acceptSubscriberOffer(r.offer);
      } catch (e) {
        if (this._unsupported(e)) log('warn', 'this server has no top-N audio mode');
        else log('warn', 'connecting top-N audio failed:', e && e.message);
      }
    }

    _trackForMid(mid) {
      if (!this._subPc) return null;
      var tx = this._subPc.getTransceivers().filter(function (t) { return t.mid === mid; })[0];
      return tx ? tx.receiver.track : null;
    }

    async _acceptSubscriberOffer(offer) {
      if (this._subPc) {
        try { this._subPc.close(); } catch (e) { /* closed */ }
        this._remote.forEach(function (rs) { rs._detach(); });
      }
      var pc = this._newPc();
      this._subPc = pc;
      pc.addEventListener('connectionstatechange', function () { log('debug', 'subscriber: ' + pc.connectionState); });
      try {
        await pc.setRemoteDescription({ type: 'offer', sdp: offer });
        await pc.setLocalDescription(await pc.createAnswer());
        await waitIceGathering(pc, ICE_GATHER_TIMEOUT_MS);
      } catch (e) {
        throw rtcError(RtcErrorCode.RTC_ERR_CODE_ANSWER_SDP_INVALID, e && e.message);
      }
      await this._request('subscriberAnswer', { sdp: pc.localDescription.sdp });
      this._setupTopN();
    }

    // --- statistics ---

    _rate(key, bytes, baseline) {
      var t = Date.now();
      var prev = this._rates.get(key) || { v: 0, t: baseline || t };
      this._rates.set(key, { v: bytes, t: t });
      var dt = (t - prev.t) / 1000;
      return dt > 0 && bytes >= prev.v ? Math.round(((bytes - prev.v) * 8) / dt / 1000) : 0;
    }

    async getTransportStats() {
      var stream = this._published.get('main') || this._published.get('auxiliary');
      if (!stream || !stream._pub) throw illegal('publish a stream first');
      var pub = stream._pub;
      var list = await statsList(pub.pc);
      var pair = selectedPair(list);
      var bytesSent = pair && pair.bytesSent !== undefined ? pair.bytesSent
        : list.filter(function (s) { return s.type === 'outbound-rtp'; }).reduce(function (n, s) { return n + (s.bytesSent || 0); }, 0);
      var rtt = 0;
      if (pair && isNum(pair.currentRoundTripTime)) rtt = pair.currentRoundTripTime * 1000;
      else {
        var rin = firstOfType(list, 'remote-inbound-rtp');
        if (rin && isNum(rin.roundTripTime)) rtt = rin.roundTripTime * 1000;
      }
      var bytesReceived = 0;
      var subCreated = null;
      if (this._subPc) {
        var sub = await statsList(this._subPc);
        var sp = selectedPair(sub);
        bytesReceived = sp && sp.bytesReceived !== undefined ? sp.bytesReceived
          : sub.filter(function (s) { return s.type === 'inbound-rtp'; }).reduce(function (n, s) { return n + (s.bytesReceived || 0); }, 0);
      }
      return {
        bytesSent: bytesSent,
        bytesReceived: bytesReceived,
        sendBitrate: this._rate('transport:tx', bytesSent, pub.createdAt),
        recvBitrate: this._rate('transport:rx', bytesReceived, subCreated),
        rtt: Math.round(rtt)
      };
    }

    async _senderStats(sender) {
      var list = await statsList(sender);
      return { out: firstOfType(list, 'outbound-rtp'), remote: firstOfType(list, 'remote-inbound-rtp') };
    }

    async _receiverStats(mid) {
      if (!this._subPc) return null;
      var tx = this._subPc.getTransceivers().filter(function (t) { return t.mid === mid; })[0];
      if (!tx) return null;
      return firstOfType(await statsList(tx.receiver), 'inbound-rtp');
    }

    async getLocalAudioStats() {
      var out = new Map();
      var stream = this._published.get('main') || this._published.get('auxiliary');
      if (stream && stream._pub && stream._pub.audioSender) {
        var s = (await this._senderStats(stream._pub.audioSender)).out;
        out.set(this._joinInfo ? this._joinInfo.userId : '', { bytesSent: s ? s.bytesSent || 0 : 0, packetsSent: s ? s.packetsSent || 0 : 0 });
      }
      return out;
    }

    async _localVideoStatsOf(stream) {
      var rows = [];
      var sorted = stream._sorted();
      for (var i = 0; i < sorted.length; i++) {
        var sender = stream._pub.videoSenders.get(sorted[i].id);
        if (!sender) continue;
        var s = (await this._senderStats(sender)).out || {};
        rows.push({
          resolutionId: sorted[i].id,
          bytesSent: s.bytesSent || 0,
          packetsSent: s.packetsSent || 0,
          framesEncoded: s.framesEncoded || 0,
          framesSent: s.framesSent || 0,
          frameWidth: s.frameWidth || 0,
          frameHeight: s.frameHeight || 0
        });
      }
      return rows;
    }

    async getLocalVideoStats() {
      var out = new Map();
      if (!this._joinInfo) return out;
      var main = this._published.get('main');
      var aux = this._published.get('auxiliary');
      if (!(main && main._pub) && !(aux && aux._pub)) return out;
      out.set(this._joinInfo.userId, {
        mainStream: main && main._pub ? await this._localVideoStatsOf(main) : [],
        subStream: aux && aux._pub ? (await this._localVideoStatsOf(aux))[0] : undefined
      });
      return out;
    }

    async getRemoteAudioStats() {
      var out = new Map();
      var streams = Array.from(this._remote.values());
      for (var i = 0; i < streams.length; i++) {
        var s = streams[i];
        var mid = s._midOf('audio');
        if (!mid) continue;
        var st = await this._receiverStats(mid);
        if (!st) continue;
        var prev = out.get(s.getUserId()) || { bytesReceived: 0, packetsReceived: 0, packetsLost: 0 };
        out.set(s.getUserId(), {
          bytesReceived: prev.bytesReceived + (st.bytesReceived || 0),
          packetsReceived: prev.packetsReceived + (st.packetsReceived || 0),
          packetsLost: prev.packetsLost + (st.packetsLost || 0)
        });
      }
      return out;
    }

    async _remoteVideoRows(s) {
      var rows = [];
      var ids = s._subscribedResolutionIds();
      for (var i = 0; i < ids.length; i++) {
        var st = await this._receiverStats(s._midOf('video', ids[i]));
        if (!st) continue;
        rows.push({
          resolutionId: ids[i],
          bytesReceived: st.bytesReceived || 0,
          packetsReceived: st.packetsReceived || 0,
          packetsLost: st.packetsLost || 0,
          framesDecoded: st.framesDecoded || 0,
          frameWidth: st.frameWidth || 0,
          frameHeight: st.frameHeight || 0
        });
      }
      return rows;
    }

    async getRemoteVideoStats() {
      var out = new Map();
      var streams = Array.from(this._remote.values());
      for (var i = 0; i < streams.length; i++) {
        var s = streams[i];
        if (!s._subscribedResolutionIds().length) continue;
        var entry = out.get(s.getUserId()) || { mainStream: [], subStream: undefined };
        var rows = await this._remoteVideoRows(s);
        if (s.getType() === 'main') entry.mainStream = rows;
        else entry.subStream = rows[0];
        out.set(s.getUserId(), entry);
      }
      return out;
    }

    // network-quality: computed from the publisher's RTCP feedback (uplink) and the subscriber's receive stats (downlink)
    _startQuality() {
      this._stopQuality();
      var self = this;
      this._qualityTimer = setInterval(function () {
        self._computeQuality().catch(function (e) { log('debug', 'network quality:', e && e.message); });
      }, QUALITY_INTERVAL_MS);
    }

    _stopQuality() {
      if (this._qualityTimer) clearInterval(this._qualityTimer);
      this._qualityTimer = null;
    }

    async _computeQuality() {
      var up = 0;
      var down = 0;
      if (this._state !== CONNECTED) {
        up = 6;
        down = 6;
      } else {
        var pubs = Array.from(this._published.values()).filter(function (s) { return s._pub; });
        for (var i = 0; i < pubs.length; i++) {
          var pc = pubs[i]._pub.pc;
          if (pc.connectionState === 'failed' || pc.connectionState === 'disconnected') {
            up = 6;
            break;
          }
          var list = await statsList(pc);
          list.forEach(function (s) {
            if (s.type !== 'remote-inbound-rtp') return;
            var q = qualityOf(s.fractionLost || 0, isNum(s.roundTripTime) ? s.roundTripTime * 1000 : 0);
            up = Math.max(up, q);
          });
        }
        if (this._subPc) {
          var sp = this._subPc;
          if (sp.connectionState === 'failed' || sp.connectionState === 'disconnected') {
            down = 6;
          } else {
            var sub = await statsList(sp);
            var pair = selectedPair(sub);
            var rttMs = pair && isNum(pair.currentRoundTripTime) ? pair.currentRoundTripTime * 1000 : 0;
            var received = 0;
            var lost = 0;
            sub.forEach(function (s) {
              if (s.type === 'inbound-rtp') {
                received += s.packetsReceived || 0;
                lost += s.packetsLost || 0;
              }
            });
            var prev = this._rates.get('quality:down') || { received: 0, lost: 0 };
            this._rates.set('quality:down', { received: received, lost: lost });
            var dr = received - prev.received;
            var dl = Math.max(0, lost - prev.lost);
            if (dr + dl > 0) down = qualityOf(dl / (dr + dl), rttMs);
          }
        }
      }
      var q = { uplinkNetworkQuality: up, downlinkNetworkQuality: down };
      if (!this._quality || this._quality.uplinkNetworkQuality !== up || this._quality.downlinkNetworkQuality !== down) {
        this._quality = q;
        this._emit('network-quality', q);
      }
    }

    async enableRtcStats(enable, interval) {
      if (typeof enable !== 'boolean') throw badParam('enable must be a boolean');
      if (this._rtcStatsTimer) clearInterval(this._rtcStatsTimer);
      this._rtcStatsTimer = null;
      if (!enable) return;
      if (!isNum(interval) || interval < 100) throw badParam('interval must be a number of milliseconds (>= 100)');
      var self = this;
      this._rtcStatsTimer = setInterval(function () {
        if (!self._session) return;
        self._collectRtcStats().then(function (list) {
          if (list.length) self._emit('rtc-stats', list);
        }).catch(function (e) { log('debug', 'rtc-stats:', e && e.message); });
      }, interval);
    }

    _contentType(stream, kind, index, count) {
      if (stream.getType() === 'auxiliary' || (stream instanceof LocalStream && stream._screen)) return 'desktop';
      if (kind === 'audio' || index === 0) return 'main';
      if (index === count - 1) return 'slides';
      return 'middle' + Math.min(4, index);
    }

    _rtcRow(key, userName, isRemote, streamType, mediaType, s, remote) {
      var bytes = isRemote ? s.bytesReceived || 0 : s.bytesSent || 0;
      var packets = isRemote ? s.packetsReceived || 0 : s.packetsSent || 0;
      var lostTotal = isRemote ? s.packetsLost || 0 : remote && remote.packetsLost ? remote.packetsLost : 0;
      var prev = this._rates.get('rtc:' + key) || { bytes: 0, packets: 0, lost: 0, t: 0 };
      var t = Date.now();
      this._rates.set('rtc:' + key, { bytes: bytes, packets: packets, lost: lostTotal, t: t });
      var dt = prev.t ? (t - prev.t) / 1000 : 0;
      var dp = packets - prev.packets;
      var dl = Math.max(0, lostTotal - prev.lost);
      var jitter = isRemote ? s.jitter : remote ? remote.jitter : 0;
      return {
        userName: userName,
        isRemote: isRemote,
        streamType: streamType,
        mediaType: mediaType,
        bitrate: dt > 0 ? Math.round(((bytes - prev.bytes) * 8) / dt / 1000) : 0,
        frameRate: mediaType === 'video' ? Math.round(s.framesPerSecond || 0) : 0,
        rtt: !isRemote && remote && isNum(remote.roundTripTime) ? Math.round(remote.roundTripTime * 1000) : 0,
        jitter: isNum(jitter) ? Math.round(jitter * 1000) : 0,
        pktLossRate: dp + dl > 0 ? Math.round((dl / (dp + dl)) * 10000) / 100 : 0
      };
    }

    async _collectRtcStats() {
      var rows = [];
      var me = this._joinInfo ? this._joinInfo.userName || this._joinInfo.userId : '';
      var pubs = Array.from(this._published.values());
      for (var i = 0; i < pubs.length; i++) {
        var stream = pubs[i];
        if (!stream._pub) continue;
        if (stream._pub.audioSender) {
          var a = await this._senderStats(stream._pub.audioSender);
          if (a.out) rows.push(this._rtcRow('out:audio:' + stream._pub.type, me, false, this._contentType(stream, 'audio', 0, 1), 'audio', a.out, a.remote));
        }
        var sorted = stream._sorted().filter(function (r) { return stream._pub.videoSenders.has(r.id); });
        for (var j = 0; j < sorted.length; j++) {
          var v = await this._senderStats(stream._pub.videoSenders.get(sorted[j].id));
          if (v.out) rows.push(this._rtcRow('out:video:' + sorted[j].id, me, false, this._contentType(stream, 'video', j, sorted.length), 'video', v.out, v.remote));
        }
      }
      var remotes = Array.from(this._remote.values());
      for (var k = 0; k < remotes.length; k++) {
        var rs = remotes[k];
        var name = rs._userName || rs.getUserId();
        var amid = rs._midOf('audio');
        if (amid) {
          var ra = await this._receiverStats(amid);
          if (ra) rows.push(this._rtcRow('in:' + amid, name, true, this._contentType(rs, 'audio', 0, 1), 'audio', ra, null));
        }
        var all = rs._resolutionIds();
        var ids = rs._subscribedResolutionIds();
        for (var n = 0; n < ids.length; n++) {
          var vmid = rs._midOf('video', ids[n]);
          var rv = await this._receiverStats(vmid);
          if (rv) rows.push(this._rtcRow('in:' + vmid, name, true, this._contentType(rs, 'video', all.indexOf(ids[n]), all.length), 'video', rv, null));
        }
      }
      return rows;
    }

    async enableStreamStateDetection(enable, interval) {
      if (typeof enable !== 'boolean') throw badParam('enable must be a boolean');
      if (enable && (!isNum(interval) || interval < 1 || interval > 60)) throw badParam('interval must be in [1, 60] seconds');
      if (!this._session) throw illegal('call enableStreamStateDetection() after join()');
      if (this._detect) clearInterval(this._detect.timer);
      this._detect = null;
      if (!enable) return;
      var self = this;
      var state = { last: new Map(), interrupted: new Set(), timer: null };
      state.timer = setInterval(function () {
        self._detectTick(state).catch(function (e) { log('debug', 'stream state detection:', e && e.message); });
      }, interval * 1000);
      this._detect = state;
    }

    async _detectTick(state) {
      var interrupted = [];
      var recovered = [];
      var streams = Array.from(this._remote.values());
      var seen = new Set();
      for (var i = 0; i < streams.length; i++) {
        var s = streams[i];
        var ids = s._subscribedResolutionIds();
        if (!ids.length) continue;
        var key = streamKey(s.getUserId(), s.getType()) + s.getId();
        seen.add(key);
        var frames = 0;
        for (var j = 0; j < ids.length; j++) {
          var st = await this._receiverStats(s._midOf('video', ids[j]));
          frames += st ? st.framesDecoded || 0 : 0;
        }
        var prev = state.last.get(key);
        state.last.set(key, frames);
        if (prev === undefined) continue;
        var info = { userId: s.getUserId(), isScreen: s.getType() === 'auxiliary' };
        if (frames <= prev && !state.interrupted.has(key)) {
          state.interrupted.add(key);
          interrupted.push(info);
        } else if (frames > prev && state.interrupted.has(key)) {
          state.interrupted.delete(key);
          recovered.push(info);
        }
      }
      state.last.forEach(function (v, k) { if (!seen.has(k)) state.last.delete(k); });
      state.interrupted.forEach(function (k) { if (!seen.has(k)) state.interrupted.delete(k); });
      if (this._detect !== state) return;
      if (interrupted.length) this._emit('stream-interrupted', interrupted);
      if (recovered.length) this._emit('stream-recovered', recovered);
    }
  }

  // ------------------------------------------------------------------ HRTC (static)

  function detectBrowser() {
    var ua = typeof navigator !== 'undefined' ? navigator.userAgent || '' : '';
    var rules = [
      ['Edge', /Edg(?:e|A|iOS)?\/(\d+)/],
      ['Opera', /OPR\/(\d+)/],
      ['HuaweiBrowser', /HuaweiBrowser\/(\d+)/],
      ['SamsungBrowser', /SamsungBrowser\/(\d+)/],
      ['WeChat', /MicroMessenger\/(\d+)/],
      ['Firefox', /(?:Firefox|FxiOS)\/(\d+)/],
      ['Chrome', /(?:HeadlessChrome|Chrome|CriOS|Chromium)\/(\d+)/],
      ['Safari', /Version\/(\d+)(?:\.\d+)?.*Safari/]
    ];
    for (var i = 0; i < rules.length; i++) {
      var m = rules[i][1].exec(ua);
      if (m) return { name: rules[i][0], version: parseInt(m[1], 10), mobile: /Android|iPhone|iPad|iPod|Mobile/i.test(ua) };
    }
    return { name: 'unknown', version: 0, mobile: /Android|iPhone|iPad|iPod|Mobile/i.test(ua) };
  }

  // The browser whitelist (minimum major versions); Huawei manages theirs remotely, ours ships here.
  var BROWSER_WHITELIST = {
    desktop: { Chrome: 70, Edge: 79, Opera: 57, Firefox: 60, Safari: 12 },
    mobile: { Chrome: 70, Safari: 12, HuaweiBrowser: 10, SamsungBrowser: 10, WeChat: 7, Edge: 79, Firefox: 68 }
  };

  async function checkSystemRequirements(strictCheckBrowser) {
    var strict = strictCheckBrowser === undefined ? true : strictCheckBrowser;
    if (typeof strict !== 'boolean') throw badParam('strictCheckBrowser must be a boolean');
    if (typeof RTCPeerConnection === 'undefined' || typeof WebSocket === 'undefined' ||
        typeof RTCRtpTransceiver === 'undefined') {
      throw rtcError(90100025, 'RTCPeerConnection, RTCRtpTransceiver and WebSocket are required');
    }
    if (strict) {
      var b = detectBrowser();
      var table = b.mobile ? BROWSER_WHITELIST.mobile : BROWSER_WHITELIST.desktop;
      if (!(b.name in table) || b.version < table[b.name]) {
        throw rtcError(90100025, b.name + ' ' + b.version + (b.mobile ? ' (mobile)' : '') + ' is not on the browser whitelist');
      }
    }
    var missing = [];
    var md = mediaDevices();
    if (!md || typeof md.getUserMedia !== 'function') missing.push('getUserMedia (needs https or localhost)');
    if (typeof RTCRtpSender === 'undefined' || typeof RTCRtpSender.getCapabilities !== 'function' ||
        !(RTCRtpSender.getCapabilities('video') || { codecs: [] }).codecs.some(function (c) { return c.mimeType.toLowerCase() === 'video/vp8'; })) {
      missing.push('VP8 encoding');
    }
    if (missing.length) throw rtcError(RtcErrorCode.RTC_ERR_CODE_MEDIA_UPSTREAM_UNSUPPORTED, missing.join(', '));
    return true;
  }

  async function enumerate(kind) {
    var md = mediaDevices();
    if (!md || typeof md.enumerateDevices !== 'function') throw rtcError(RtcErrorCode.RTC_ERR_CODE_NOT_SUPPORT_ENUMERATE_DEVICES);
    var list = await md.enumerateDevices();
    return kind ? list.filter(function (d) { return d.kind === kind; }) : list;
  }

  function createClient(config) {
    if (!isObj(config)) throw badParam('config is required');
    if (typeof config.appId !== 'string' || !config.appId || config.appId.length > 128) throw badParam('appId: a string of 1-128 characters');
    if (config.domain !== undefined && config.domain !== null && (typeof config.domain !== 'string' || !config.domain || config.domain.length > 128)) {
      throw badParam('domain: a string of at most 128 characters');
    }
    if (config.countryCode !== undefined && config.countryCode !== null && (typeof config.countryCode !== 'string' || !/^[A-Za-z]{2}$/.test(config.countryCode))) {
      throw badParam('countryCode: an ISO 3166-1 alpha-2 code');
    }
    return new Client(config);
  }

  function createStream(config) {
    config = config === undefined ? {} : config;
    if (!isObj(config)) throw badParam('config must be an object');
    ['screen', 'video', 'audio', 'screenAudio', 'mirror'].forEach(function (k) {
      if (config[k] !== undefined && typeof config[k] !== 'boolean') throw badParam(k + ' must be a boolean');
    });
    ['microphoneId', 'cameraId', 'userId'].forEach(function (k) {
      if (config[k] !== undefined && config[k] !== null && typeof config[k] !== 'string') throw badParam(k + ' must be a string');
    });
    if (config.facingMode !== undefined && config.facingMode !== 'user' && config.facingMode !== 'environment') {
      throw badParam('facingMode must be "user" or "environment"');
    }
    var cfg = Object.assign({}, config);
    if (cfg.screen) {
      // A stream is either a camera stream or a presentation; audio/video options apply to cameras only.
      if (cfg.audio || cfg.video) log('warn', 'createStream: audio/video are ignored for a screen-sharing stream');
      cfg.audio = false;
      cfg.video = false;
    }
    return new LocalStream(cfg);
  }

  function setLogLevel(level) {
    if (!(level in LOG_LEVELS)) {
      log('warn', 'setLogLevel: level must be none, error, warn, info or debug');
      return;
    }
    logLevel = LOG_LEVELS[level];
  }

  var HRTC = {
    VERSION: VERSION,
    KINDLING_VERSION: KINDLING_VERSION,
    checkSystemRequirements: checkSystemRequirements,
    getDevices: function () { return enumerate(null); },
    getCameras: function () { return enumerate('videoinput'); },
    getMicrophones: function () { return enumerate('audioinput'); },
    getSpeakers: function () { return enumerate('audiooutput'); },
    isScreenShareSupported: function () {
      var md = mediaDevices();
      return !!(md && typeof md.getDisplayMedia === 'function');
    },
    createClient: createClient,
    createStream: createStream,
    setLogLevel: setLogLevel,
    RtcError: RtcError,
    RtcErrorCode: RtcErrorCode,
    StreamInitializeResult: StreamInitializeResult,
    Client: Client,
    Stream: Stream,
    LocalStream: LocalStream,
    RemoteStream: RemoteStream,
    VIDEO_PROFILES: Object.keys(VIDEO_PROFILES),
    AUDIO_PROFILES: Object.keys(AUDIO_PROFILES),
    SCREEN_PROFILES: Object.keys(SCREEN_PROFILES)
  };
  return HRTC;
}));
