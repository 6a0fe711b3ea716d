package org.modelrunner.host;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.reflect.Constructor;
import java.lang.reflect.GenericArrayType;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.lang.reflect.TypeVariable;
import java.lang.reflect.WildcardType;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.SortedMap;

import org.modelrunner.host.Codecs.*;

/** Builds codecs binding contract messages to Java types, collecting every problem instead of stopping at the first. */
final class Binder {
    static final MethodHandles.Lookup LOOKUP = MethodHandles.lookup();
    static final MethodType GETTER = MethodType.methodType(Object.class, Object.class);
    static final MethodType SETTER = MethodType.methodType(void.class, Object.class, Object.class);

    final Schema schema;
    final String rpc;
    final List<Map<String, String>> problems = new ArrayList<>();
    private final Map<String, MsgCodec> memo = new HashMap<>();

    Binder(Schema schema, String rpc) { this.schema = schema; this.rpc = rpc; }

    void problem(String message, String field, String reason) {
        Map<String, String> p = new LinkedHashMap<>();
        p.put("rpc", rpc);
        p.put("message", message == null ? "" : message);
        p.put("field", field == null ? "" : field);
        p.put("reason", reason);
        problems.add(p);
    }

    // ------------------------------------------------------------------ types

    static Class<?> raw(Type t) {
        if (t instanceof Class) return (Class<?>) t;
        if (t instanceof ParameterizedType) return (Class<?>) ((ParameterizedType) t).getRawType();
        if (t instanceof GenericArrayType)
            return java.lang.reflect.Array.newInstance(raw(((GenericArrayType) t).getGenericComponentType()), 0).getClass();
        if (t instanceof WildcardType) return raw(((WildcardType) t).getUpperBounds()[0]);
        if (t instanceof TypeVariable) {
            Type[] b = ((TypeVariable<?>) t).getBounds();
            return b.length == 0 ? Object.class : raw(b[0]);
        }
        return Object.class;
    }

    static Type typeArg(Type t, int i) {
        if (t instanceof ParameterizedType) {
            Type[] a = ((ParameterizedType) t).getActualTypeArguments();
            if (i < a.length) return a[i];
        }
        return Object.class;
    }

    static Type component(Type t) {
        if (t instanceof GenericArrayType) return ((GenericArrayType) t).getGenericComponentType();
        Class<?> r = raw(t);
        if (r.isArray()) return r.getComponentType();
        return typeArg(t, 0);
    }

    static String typeName(Type t) { return t.getTypeName(); }

    static Object zero(Class<?> c) {
        if (!c.isPrimitive()) return c == Optional.class ? Optional.empty() : null;
        if (c == boolean.class) return false;
        if (c == char.class) return '\0';
        if (c == double.class) return 0.0;
        if (c == float.class) return 0f;
        if (c == long.class) return 0L;
        if (c == int.class) return 0;
        if (c == short.class) return (short) 0;
        return (byte) 0;
    }

    static String protoTypeName(Schema.Field f) {
        switch (f.type) {
            case Schema.MESSAGE: case Schema.GROUP: return f.typeRef;
            case Schema.ENUM: return "enum " + f.typeRef;
            default: return new String[] {"?", "double", "float", "int64", "uint64", "int32", "fixed64", "fixed32", "bool",
                    "string", "group", "message", "bytes", "uint32", "enum", "sfixed32", "sfixed64", "sint32", "sint64"}[f.type];
        }
    }

    // ------------------------------------------------------------------ scalars

    ScalarConv scalar(Schema.Field f, Class<?> c, boolean read) {
        int tk;
        if (c == double.class || c == Double.class) tk = ScalarConv.T_DOUBLE;
        else if (c == float.class || c == Float.class) tk = ScalarConv.T_FLOAT;
        else if (c == long.class || c == Long.class) tk = ScalarConv.T_LONG;
        else if (c == int.class || c == Integer.class) tk = ScalarConv.T_INT;
        else if (c == short.class || c == Short.class) tk = ScalarConv.T_SHORT;
        else if (c == byte.class || c == Byte.class) tk = ScalarConv.T_BYTE;
        else if (c == boolean.class || c == Boolean.class) tk = ScalarConv.T_BOOL;
        else if (c == char.class || c == Character.class) tk = ScalarConv.T_CHAR;
        else if (c == String.class || c == CharSequence.class) tk = ScalarConv.T_STRING;
        else if (c == byte[].class) tk = ScalarConv.T_BYTES;
        else if (c.isEnum()) tk = ScalarConv.T_ENUM;
        else if (c == Object.class || c == Number.class || c == java.io.Serializable.class || c == Comparable.class) tk = ScalarConv.T_OBJECT;
        else tk = -1;
        boolean ok;
        switch (f.type) {
            case Schema.BOOL: ok = tk == ScalarConv.T_BOOL || tk == ScalarConv.T_OBJECT; break;
            case Schema.STRING: ok = tk == ScalarConv.T_STRING || tk == ScalarConv.T_ENUM || tk == ScalarConv.T_CHAR || tk == ScalarConv.T_OBJECT; break;
            case Schema.BYTES: ok = tk == ScalarConv.T_BYTES || tk == ScalarConv.T_OBJECT; break;
            case Schema.ENUM: ok = tk == ScalarConv.T_ENUM || tk == ScalarConv.T_STRING || tk == ScalarConv.T_INT || tk == ScalarConv.T_LONG || tk == ScalarConv.T_OBJECT; break;
            default: ok = tk >= ScalarConv.T_DOUBLE && tk <= ScalarConv.T_BYTE || tk == ScalarConv.T_OBJECT;
        }
        if (c == Number.class && (f.type == Schema.STRING || f.type == Schema.BOOL || f.type == Schema.BYTES)) ok = false;
        if (!ok) {
            problem(f.owner.name, f.name, "proto type " + protoTypeName(f) + " does not bind to Java type " + c.getTypeName());
            return null;
        }
        ScalarConv sc = new ScalarConv(f, tk, c.isPrimitive());
        if (tk == ScalarConv.T_ENUM) {
            Object[] constants = c.getEnumConstants();
            Map<String, Object> byName = new LinkedHashMap<>();
            for (Object k : constants) byName.put(((Enum<?>) k).name(), k);
            if (f.type == Schema.STRING) {
                sc.javaEnumByName = byName;
            } else {
                String prefix = Codecs.enumPrefix(f.enumDef);
                List<String> missing = new ArrayList<>();
                for (Map.Entry<String, Integer> e : f.enumDef.byName.entrySet()) {
                    String n = e.getKey();
                    Object k = byName.get(n);
                    if (k == null && n.startsWith(prefix)) k = byName.get(n.substring(prefix.length()));
                    if (k != null) { sc.enumIn.putIfAbsent(e.getValue(), k); sc.enumOut.putIfAbsent(k, e.getValue()); }
                    else if (read) missing.add(n);
                }
                if (!read) for (Object k : constants) if (!sc.enumOut.containsKey(k)) missing.add(((Enum<?>) k).name());
                if (!missing.isEmpty()) {
                    problem(f.owner.name, f.name, read
                            ? "proto enum " + f.enumDef.name + " values " + missing + " have no constant in Java enum " + c.getName()
                            : "Java enum " + c.getName() + " constants " + missing + " have no value in proto enum " + f.enumDef.name);
                    return null;
                }
            }
        }
        return sc;
    }

    // ------------------------------------------------------------------ fields

    FieldCodec field(Schema.Field f, Type t, boolean read) {
        Class<?> r = raw(t);
        if (r == Optional.class) {
            FieldCodec inner = field(f, typeArg(t, 0), read);
            return inner == null ? null : new OptionalField(inner);
        }
        if (f.isMap()) {
            if (!(Props.isMap(r) || r == Object.class)) {
                problem(f.owner.name, f.name, "map field needs a java.util.Map, Java type is " + typeName(t));
                return null;
            }
            Schema.Field kf = f.message.field(1), vf = f.message.field(2);
            ScalarConv kc = scalar(kf, raw(typeArg(t, 0)), read);
            Type vt = typeArg(t, 1);
            ScalarConv vsc = null;
            MsgCodec vmc = null;
            if (vf.isMessage()) vmc = message(vf.message, vt, read); else vsc = scalar(vf, raw(vt), read);
            if (kc == null || (vsc == null && vmc == null)) return null;
            return new MapField(f, kc, vsc, vmc, SortedMap.class.isAssignableFrom(r));
        }
        if (f.repeated) {
            if (r == double[].class && f.type == Schema.DOUBLE) return new PackedDoubles(f);
            if (r == float[].class && f.type == Schema.FLOAT) return new PackedFloats(f);
            if (r == int[].class && (f.type == Schema.INT32 || f.type == Schema.UINT32)) return new PackedVarints(f, true);
            if (r == long[].class && (f.type == Schema.INT64 || f.type == Schema.UINT64)) return new PackedVarints(f, false);
            int container;
            Type et;
            Class<?> comp = null;
            if (r.isArray() && r != byte[].class || (r == byte[].class && f.type != Schema.BYTES)) {
                container = Codecs.C_ARRAY;
                et = component(t);
                comp = raw(et);
            } else if (r == Object.class || r == Iterable.class || r.isAssignableFrom(ArrayList.class)) {
                container = Codecs.C_LIST;
                et = r == Object.class ? Object.class : typeArg(t, 0);
            } else if (r.isAssignableFrom(LinkedHashSet.class)) {
                container = Codecs.C_SET;
                et = typeArg(t, 0);
            } else {
                problem(f.owner.name, f.name, "repeated field needs a List, Set or array, Java type is " + typeName(t));
                return null;
            }
            if (f.isMessage()) {
                MsgCodec mc = message(f.message, et, read);
                return mc == null ? null : new Repeated(f, null, mc, container, comp);
            }
            ScalarConv sc = scalar(f, raw(et), read);
            return sc == null ? null : new Repeated(f, sc, null, container, comp);
        }
        if (f.isMessage()) {
            MsgCodec mc = message(f.message, t, read);
            return mc == null ? null : new SingularMessage(f, mc);
        }
        if (Props.isCollection(r) || (r.isArray() && r != byte[].class)) {
            problem(f.owner.name, f.name, "singular field of type " + protoTypeName(f) + " does not bind to Java collection/array " + typeName(t));
            return null;
        }
        ScalarConv sc = scalar(f, r, read);
        return sc == null ? null : new SingularScalar(f, sc);
    }

    // ------------------------------------------------------------------ messages

    MsgCodec message(Schema.Msg m, Type t, boolean read) {
        String key = m.name + "|" + t.getTypeName() + "|" + read;
        MsgCodec done = memo.get(key);
        if (done != null) return done;
        Class<?> r = raw(t);
        // a message whose one field is a map binds to a Map as that map (e.g. generated wrappers: LongMap)
        boolean oneMap = m.fields.size() == 1 && m.fields.get(0).isMap();
        if (r == Object.class || (Props.isMap(r) && !m.mapEntry && !oneMap)) {
            GenericCodec g = new GenericCodec(m);
            memo.put(key, g);
            for (int i = 0; i < m.fields.size(); i++) {
                Schema.Field f = m.fields.get(i);
                Type ft = f.isMap() ? Map.class : f.repeated ? List.class : Object.class;
                g.fields[i] = field(f, ft, read);
            }
            return g;
        }
        if (Props.isPojo(r) && !r.isInterface() || (Props.isPojo(r) && !read)) return pojo(m, r, key, read);
        if (m.fields.size() == 1) {
            UnwrapCodec u = new UnwrapCodec(m);
            memo.put(key, u);
            u.fc = field(m.fields.get(0), t, read);
            return u.fc == null ? null : u;
        }
        problem(m.name, null, "message with " + m.fields.size() + " fields does not bind to Java type " + typeName(t)
                + " (needs a class with matching fields or properties, or a message with exactly one field)");
        return null;
    }

    private MsgCodec pojo(Schema.Msg m, Class<?> c, String key, boolean read) {
        PojoCodec pc = new PojoCodec(m);
        memo.put(key, pc);
        int before = problems.size();
        List<Props.Prop> props = Props.of(c);
        Map<String, Props.Prop> byName = new LinkedHashMap<>();
        for (Props.Prop p : props) byName.put(p.name, p);
        pc.record = c.isRecord();
        if (read) {
            try {
                if (Modifier.isAbstract(c.getModifiers())) throw new NoSuchMethodException("abstract");
                if (pc.record) {
                    Class<?>[] types = new Class<?>[props.size()];
                    pc.componentDefaults = new Object[props.size()];
                    for (int i = 0; i < types.length; i++) { types[i] = props.get(i).raw; pc.componentDefaults[i] = zero(types[i]); }
                    Constructor<?> k = c.getDeclaredConstructor(types);
                    k.setAccessible(true);
                    pc.ctor = LOOKUP.unreflectConstructor(k).asSpreader(Object[].class, types.length)
                            .asType(MethodType.methodType(Object.class, Object[].class));
                    pc.componentOf = new int[m.fields.size()];
                    java.util.Arrays.fill(pc.componentOf, -1);
                } else {
                    Constructor<?> k = c.getDeclaredConstructor();
                    k.setAccessible(true);
                    pc.ctor = LOOKUP.unreflectConstructor(k).asType(MethodType.methodType(Object.class));
                }
            } catch (ReflectiveOperationException | RuntimeException e) {
                problem(m.name, null, "Java class " + c.getName() + " cannot be built from message " + m.name
                        + ": it needs a no-arg constructor (or must be a record)");
            }
        }
        for (int i = 0; i < m.fields.size(); i++) {
            Schema.Field f = m.fields.get(i);
            Props.Prop p = Props.match(f.name, byName);
            if (p == null && f.jsonName != null) p = byName.get(f.jsonName); // a generated name: json_name is the Java name
            if (p == null) {
                problem(m.name, f.name, "no Java field or property '" + Props.camel(f.name) + "' in class " + c.getName()
                        + " (it has: " + String.join(", ", byName.keySet()) + ")");
                continue;
            }
            if (read && !p.writable(pc.record)) {
                problem(m.name, f.name, "property '" + p.name + "' of " + c.getName() + " cannot be set (no setter, final field)");
                continue;
            }
            if (!read && !p.readable()) {
                problem(m.name, f.name, "property '" + p.name + "' of " + c.getName() + " cannot be read (no getter)");
                continue;
            }
            FieldCodec fc = field(f, p.type, read);
            if (fc == null) continue;
            try {
                if (read) {
                    if (pc.record) pc.componentOf[i] = p.componentIndex;
                    else if (p.setter != null) { p.setter.setAccessible(true); pc.setters[i] = LOOKUP.unreflect(p.setter).asType(SETTER); }
                    else { p.field.setAccessible(true); pc.setters[i] = LOOKUP.unreflectSetter(p.field).asType(SETTER); }
                } else {
                    if (p.getter != null) { p.getter.setAccessible(true); pc.getters[i] = LOOKUP.unreflect(p.getter).asType(GETTER); }
                    else { p.field.setAccessible(true); pc.getters[i] = LOOKUP.unreflectGetter(p.field).asType(GETTER); }
                }
            } catch (ReflectiveOperationException | RuntimeException e) {
                problem(m.name, f.name, "cannot access '" + p.name + "' of " + c.getName() + ": " + e);
                continue;
            }
            pc.fields[i] = fc;
        }
        return problems.size() == before ? pc : null;
    }

    /** Binds method parameters to the input message's fields by name (when compiled with -parameters), else by position. */
    ParamsCodec params(Schema.Msg m, java.lang.reflect.Method method) {
        java.lang.reflect.Parameter[] ps = method.getParameters();
        Type[] types = method.getGenericParameterTypes();
        ParamsCodec pc = new ParamsCodec(m);
        pc.paramOf = new int[m.fields.size()];
        java.util.Arrays.fill(pc.paramOf, -1);
        pc.paramDefaults = new Object[ps.length];
        for (int i = 0; i < ps.length; i++) pc.paramDefaults[i] = zero(ps[i].getType());
        int before = problems.size();
        boolean named = ps.length > 0 && ps[0].isNamePresent();
        Set<Integer> used = new java.util.HashSet<>();
        if (named) {
            Map<String, Integer> byName = new LinkedHashMap<>();
            for (int i = 0; i < ps.length; i++) byName.put(ps[i].getName(), i);
            for (int i = 0; i < m.fields.size(); i++) {
                Schema.Field f = m.fields.get(i);
                Integer pi = Props.match(f.name, byName);
                if (pi == null && f.jsonName != null) pi = byName.get(f.jsonName);
                if (pi == null) {
                    problem(m.name, f.name, "no parameter '" + Props.camel(f.name) + "' in " + method.getName()
                            + "(" + String.join(", ", byName.keySet()) + ")");
                    continue;
                }
                used.add(pi);
                pc.paramOf[i] = pi;
                pc.fields[i] = field(f, types[pi], true);
            }
            for (int i = 0; i < ps.length; i++)
                if (!used.contains(i)) problem(m.name, null, "parameter '" + ps[i].getName() + "' of " + method.getName() + " has no field in message " + m.name);
        } else {
            if (ps.length != m.fields.size()) {
                problem(m.name, null, "method " + method.getName() + " takes " + ps.length + " parameters (names not compiled in: "
                        + "binding by position) but message " + m.name + " has " + m.fields.size() + " fields");
                return null;
            }
            for (int i = 0; i < ps.length; i++) {
                pc.paramOf[i] = i;
                pc.fields[i] = field(m.fields.get(i), types[i], true);
            }
        }
        return problems.size() == before ? pc : null;
    }

    static boolean isCollectionType(Class<?> c) { return Collection.class.isAssignableFrom(c); }
}
