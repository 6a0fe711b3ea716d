package clash.message;

import java.util.List;
import java.util.Map;
import java.util.Optional;

/** A model whose names clash with proto's every way (tests/bridge/test_contract_names.py). */
public class Scorer {
    /** rpc Score returns message Score: inside the service the bare name would be the rpc. */
    public Score score(Applicant a) {
        Score s = new Score();
        s.value = a.age() * 2.0;
        s.applicant = a;
        return s;
    }

    /** Differs from score() only in case: its rpc needs another name and a java_method override. */
    public Applicant Score(Applicant a) { return a; }

    public Outer.Inner inner(Outer.Inner x) { return x; }

    public Other.Inner otherInner(Other.Inner x) { return x; }

    public clash.message.b.Point point(clash.message.a.Point p) {
        clash.message.b.Point q = new clash.message.b.Point();
        q.label = p.x + "," + p.y;
        return q;
    }

    public Keywords keywords(Keywords k) { return k; }

    public Cases cases(Cases c) { return c; }

    public Containers containers(Containers c) { return c; }

    public Enums enums(Enums e) { return e; }

    public double total(double message, int option, long fooBar, long foo_bar) { return message + option + fooBar * 10 + foo_bar * 100; }

    public Scorer self(Scorer s) { return s; }

    public static String do$it(String text) { return text + "!"; }

    public enum Color { RED, GREEN }

    public enum Light { off, RED }

    public enum Weird { option, reserved }

    public enum Cased { on, ON }

    public static class Enums {
        public Color color;
        public Light light;
        public Weird weird;
        public Cased cased;
        public Optional<Color> maybe;
        public Map<Color, Integer> counts;
        public List<Cased> many;
    }

    public static class Containers {
        public Map<String, List<Double>> series;
        public Optional<List<Double>> maybeList;
        public List<List<Double>> rows;
        public double[][] matrix;
        public List<Map<String, Long>> maps;
        public Map<String, Map<String, Integer>> nested;
        public Optional<String> nickname;
        public List<double[]> arrays;
    }
}
